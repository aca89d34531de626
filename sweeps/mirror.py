"""The MLflow mirror of a launch: every MLflow write happens in one worker thread beside Tune's event loop.

Tune runs the sweep callback in its driver loop, so an MLflow request made there (a hung or
dead server, a slow disk) would stall every trial. The callback only queues work here, which
costs no request. One worker does the work in order — per trial: its run, its progress points
(coalesced, so hundreds of steps go in a few requests), its result with the final status last.
Work that failed because the server does not answer stays at the head of the queue and is
retried with backoff until the server is back; work the server refuses is reported once and
dropped. Storage stays the source of truth: what is still unmirrored when the launcher leaves
is mirrored by the next launch's sync.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from sweeps import storage_full
from sweeps.store import SweepStore
from sweeps.tracking import Tracker, shown_uri

#: progress points held while the server does not answer; points beyond it are dropped and counted
#: (a trial's final metrics are never dropped: they are part of its result in storage)
MAX_POINTS = 200_000
#: at exit the launcher waits for the backlog while the server takes it, but leaves the rest to the
#: next launch once nothing went through for EXIT_STALL_S, or after EXIT_CAP_S in all
EXIT_STALL_S = 20.0
EXIT_CAP_S = 300.0
#: tries of a request that the server answered with an error (5xx, 429) before it is given up
SERVER_ERROR_TRIES = 5
#: pauses between retries while the server does not answer, in seconds
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)

UNREACHABLE, SERVER_ERROR, REFUSED = "unreachable", "server error", "refused"


@dataclass
class _Job:
    """One unit of MLflow work, retried whole when the server did not answer (each is idempotent)."""

    what: str
    key: str | None
    run: Callable[[], Any]
    result: bool = False
    tries: int = 0


def failure_kind(exc: BaseException) -> str:
    """Whether a failed request should wait for the server (unreachable), be tried a few times, or be given up."""
    import requests

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, requests.exceptions.RetryError):
            return SERVER_ERROR
        if isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return UNREACHABLE
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return UNREACHABLE
        cause = cause.__cause__ or cause.__context__
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        code = exc.get_http_status_code()
        if code >= 500 or code == 429:
            return SERVER_ERROR
    return REFUSED


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


class Mirror:
    """A bounded queue of MLflow work and the one thread that does it; every method here returns at once."""

    def __init__(self, tracker: Tracker, console: Console, max_points: int = MAX_POINTS):
        self.tracker = tracker
        self.console = console
        self.max_points = max_points
        self.url = shown_uri(tracker.uri)
        #: progress points dropped because the backlog was full
        self.dropped = 0
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._abandon = threading.Event()
        self._closing = False
        self._synced = False
        self._identity: dict[str, tuple[str, Mapping[str, Any], str]] = {}
        self._opened: set[str] = set()
        self._run_ids: dict[str, str] = {}
        self._points: dict[str, list[tuple[str, float, int, int]]] = {}
        self._flush_queued: set[str] = set()
        self._held = 0
        self._failures = 0
        self._down_since: float | None = None
        self._last_done = 0.0
        self._thread = threading.Thread(target=self._work, name="mlflow-mirror", daemon=True)

    # -- the driver's side: queue and return ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, what: str, fn: Callable[[], Any]) -> None:
        """Queue sweep-level work (the parent run), done in order with everything queued before it."""
        self._queue(_Job(what, None, fn))

    def open(self, key: str, name: str, params: Mapping[str, Any], workload: str) -> None:
        """Queue the trial's run (created, or reattached by trial key and marked running)."""
        with self._cond:
            self._identity[key] = (name, params, workload)
            if key in self._opened:
                return
            self._opened.add(key)
        self._queue(_Job("open the run", key, lambda: self._open(key)))

    def progress(self, key: str, metrics: Mapping[str, float], step: int) -> None:
        """Hold a trial's progress metrics; consecutive steps of a run go to MLflow together."""
        stamp = int(time.time() * 1000)
        points = [(name, float(value), stamp, step) for name, value in metrics.items()]
        if not points:
            return
        with self._cond:
            if self._held + len(points) > self.max_points:
                self.dropped += len(points)
                return
            self._points.setdefault(key, []).extend(points)
            self._held += len(points)
            if key in self._flush_queued:
                return
            self._flush_queued.add(key)
        self._queue(_Job("log progress", key, lambda: self._flush(key)))

    def finish(self, key: str, record: Mapping[str, Any], trial_dir: Path) -> None:
        """Queue the trial's result: its metrics, tags, artifacts, and last its final status."""
        self._queue(_Job("record the result", key, lambda: self._finish(key, record, trial_dir), result=True))

    def sync(
        self,
        store: SweepStore,
        names: Mapping[str, str],
        params: Mapping[str, Mapping[str, Any]],
        workload: str,
    ) -> None:
        """Queue the results in storage that MLflow has not seen (finished while no launcher was listening)."""
        self._queue(_Job("mirror earlier results", None, lambda: self._sync(store, names, params, workload)))

    def close(self, stall_s: float = EXIT_STALL_S, cap_s: float = EXIT_CAP_S) -> int:
        """Wait for the backlog while it moves (bounded), then leave the rest to the next launch; returns results left.

        A slow server that still takes work gets it; a hung or dead one costs at most ``stall_s``.
        """
        start = time.monotonic()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._jobs and self._thread.is_alive():
                now = time.monotonic()
                left = min(max(self._last_done, start) + stall_s, start + cap_s) - now
                if left <= 0:
                    break
                self._cond.wait(left)
            results = sum(job.result for job in self._jobs)
            unfinished = bool(self._jobs)
            synced = self._synced
            self._abandon.set()
            self._cond.notify_all()
        if unfinished:
            earlier = "" if synced else " (and any from earlier launches)"
            self.console.print(
                f"[yellow]MLflow: {escape(self.url)} did not take the backlog "
                f"({time.monotonic() - start:.0f} s at exit): "
                f"{results} result(s){earlier} left for the next launch to mirror[/]"
            )
        if self.dropped:
            self.console.print(
                f"[yellow]MLflow: {self.dropped} progress point(s) were not kept while the server did not answer "
                "(final metrics are in storage and mirrored)[/]"
            )
        return results

    def _queue(self, job: _Job) -> None:
        with self._cond:
            if self._abandon.is_set():
                return
            self._jobs.append(job)
            self._cond.notify_all()

    # -- the worker's side: do the work, in order -------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs or self._abandon.is_set():
                    return
                job = self._jobs[0]
            try:
                job.run()
            except Exception as exc:  # the sweep goes on whatever MLflow does
                if self._abandon.is_set():
                    return
                if storage_full.note(exc, "the MLflow store"):
                    pass  # the launcher stops the sweep and says so once; storage keeps the result
                elif self._should_retry(job, exc):
                    self._abandon.wait(BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)])
                    self._failures += 1
                    continue
                else:
                    trial = f" for trial {job.key}" if job.key else ""
                    self.console.print(f"[yellow]MLflow: could not {job.what}{trial}: {escape(_short(exc))}[/]")
            else:
                self._answered()
            with self._cond:
                self._jobs.popleft()
                self._last_done = time.monotonic()
                self._cond.notify_all()

    def _should_retry(self, job: _Job, exc: Exception) -> bool:
        kind = failure_kind(exc)
        if kind == REFUSED:
            return False
        if kind == SERVER_ERROR:
            job.tries += 1
            return job.tries < SERVER_ERROR_TRIES
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.console.print(
                f"[yellow]MLflow: {escape(self.url)} does not answer ({escape(_short(exc))}); trials go on, "
                "and what they report is mirrored when it answers again[/]"
            )
        return True

    def _answered(self) -> None:
        self._failures = 0
        if self._down_since is not None:
            seconds = time.monotonic() - self._down_since
            self._down_since = None
            self.console.print(
                f"[dim]MLflow: {escape(self.url)} answers again after {seconds:.0f} s; "
                f"mirroring the backlog ({len(self._jobs)} update(s))[/]"
            )

    def _open(self, key: str) -> None:
        name, params, workload = self._identity[key]
        self._run_ids[key] = self.tracker.child(key, name, params, workload)

    def _run_id(self, key: str) -> str:
        if key not in self._run_ids:
            self._open(key)
        return self._run_ids[key]

    def _flush(self, key: str) -> None:
        with self._cond:
            self._flush_queued.discard(key)
            points = list(self._points.get(key, ()))
        if not points:
            return
        try:
            self.tracker.log_points(self._run_id(key), points)
        except Exception as exc:
            if failure_kind(exc) == UNREACHABLE:
                raise  # kept, and sent when the server answers again
            self._forget(key, len(points))
            raise
        self._forget(key, len(points))

    def _forget(self, key: str, count: int) -> None:
        with self._cond:
            held = self._points.get(key, [])
            del held[:count]
            self._held -= count
            if not held:
                self._points.pop(key, None)

    def _finish(self, key: str, record: Mapping[str, Any], trial_dir: Path) -> None:
        run_id = self._run_id(key)
        try:
            self._flush(key)
        except Exception as exc:
            if failure_kind(exc) == UNREACHABLE:
                raise
            self.console.print(f"[yellow]MLflow: could not log progress for trial {key}: {escape(_short(exc))}[/]")
        self.tracker.finish(run_id, record, trial_dir)

    def _sync(
        self,
        store: SweepStore,
        names: Mapping[str, str],
        params: Mapping[str, Mapping[str, Any]],
        workload: str,
    ) -> None:
        """Queue each unmirrored result right after this job, ahead of anything the running sweep queued since."""
        earlier = self.tracker.unsynced(store)
        with self._cond:
            for key, record in reversed(earlier):
                self._identity.setdefault(
                    key, (names.get(key, key), params.get(key, record.get("params", {})), workload)
                )
                finish = _Job("record the result", key, self._finisher(key, record, store.trial_dir(key)), result=True)
                self._jobs.insert(1, finish)
            self._synced = True
        if earlier:
            self.console.print(
                f"[dim]MLflow: mirroring {len(earlier)} result(s) that finished while no launcher was listening[/]"
            )

    def _finisher(self, key: str, record: Mapping[str, Any], trial_dir: Path) -> Callable[[], None]:
        return lambda: self._finish(key, record, trial_dir)
