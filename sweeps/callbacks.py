"""The driver's Tune callback: hands trials to the MLflow mirror, shows progress as they finish,
and has the workload give back what an ended trial still holds in the cluster.

It runs in Tune's event loop, so it makes no MLflow request itself: the mirror
(:mod:`sweeps.mirror`) does them beside the loop, and a hung or dead server costs no trial time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweeps import storage_full
from sweeps.mirror import Mirror
from sweeps.store import COMPLETED_STATUS, FAILED, RUNNING, STOPPED_STATUS, SweepStore
from sweeps.trial import FAILED_STATUS, split_result
from sweeps.workload import STEP

log = logging.getLogger(__name__)


def member_keys(trial: Any) -> list[str]:
    """The sweep's trials that one Tune trial runs (a trial group, or one trial)."""
    return [m["context"]["key"] for m in trial.config["trial"]["members"]]


def format_metrics(metrics: Mapping[str, float], names: tuple[str, ...]) -> str:
    return "  ".join(f"{n}={metrics[n]:.3g}" for n in names if n in metrics)


class SweepCallback(Callback):
    """Keeps MLflow and the console in step with Tune's trial events."""

    def __init__(
        self,
        store: SweepStore,
        mirror: Mirror,
        names: Mapping[str, str],
        params: Mapping[str, Mapping[str, Any]],
        workload: str,
        key_metrics: tuple[str, ...],
        total: int,
        console: Console,
        failed_record: Callable[[str, str], dict],
        stopped_record: Callable[[str, dict], dict],
        release: Callable[[str], None],
    ):
        self.store = store
        self.mirror = mirror
        self.names = names
        self.params = params
        self.workload = workload
        self.key_metrics = key_metrics
        self.console = console
        self.failed_record = failed_record
        self.stopped_record = stopped_record
        self.release = release
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("trials", total=total, running="")
        self.running: set[str] = set()
        #: trials whose end was shown and mirrored (a group retried after some members finished
        #: reports each of those once)
        self.reported: set[str] = set()
        #: per trial, the metrics it reported as progress (the curves MLflow draws at their steps)
        self.drawn: dict[str, set[str]] = {}

    def __getstate__(self) -> dict:
        # Tune pickles callbacks into its experiment state only for Tuner.restore, which the
        # platform never uses (each launch is a fresh Tune run over the pending trials). The
        # console, progress bar and MLflow client live in this process and cannot travel.
        return {}

    # -- helpers --------------------------------------------------------------------------------
    def _show_running(self) -> None:
        shown = ", ".join(sorted(self.names.get(k, k) for k in self.running)[:3])
        more = f" +{len(self.running) - 3}" if len(self.running) > 3 else ""
        self.progress.update(self.task, running=f"running: {shown}{more}" if shown else "")

    def _open(self, key: str) -> None:
        self.mirror.open(key, self.names.get(key, key), self.params.get(key, {}), self.workload)

    def _release(self, key: str) -> None:
        try:
            self.release(key)
        except Exception as exc:  # the sweep goes on; the sweep's end frees everything anyway
            self.console.print(f"[yellow]could not free what trial {key} still holds in Ray: {exc}[/]")

    def _finish(self, key: str) -> None:
        record = self.store.result(key)
        if record is None or key in self.reported:
            return
        self.reported.add(key)
        self.running.discard(key)
        self._open(key)
        self.mirror.finish(key, record, self.store.trial_dir(key))
        name = self.names.get(key, key)
        if record.get("status") == COMPLETED_STATUS:
            metrics = format_metrics(record.get("metrics") or {}, self.key_metrics)
            self.console.print(f"[green]✓[/] {name}  [dim]{key}[/]  {metrics}  [dim]{record['duration_s']:.1f}s[/]")
        elif record.get("status") == STOPPED_STATUS:
            metrics = format_metrics(record.get("metrics") or {}, self.key_metrics)
            self.console.print(
                f"[magenta]■[/] {name}  [dim]{key}[/]  stopped early by {record.get('stopped_by')}  {metrics}"
            )
        else:
            message = _headline(record) or "failed"
            self.console.print(f"[red]✗[/] {name}  [dim]{key}[/]  [red]{message}[/]")
        self.progress.advance(self.task)
        self._show_running()

    # -- Tune events ----------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.progress.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for key in member_keys(trial):
            if key not in self.reported:
                self.running.add(key)
                self._open(key)
        self._show_running()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        reported, _ = split_result({k: v for k, v in result.items() if k not in _TUNE_KEYS})
        step = int(result[STEP] if isinstance(result.get(STEP), (int, float)) else result.get("training_iteration", 0))
        for key in member_keys(trial):
            if key in self.reported:
                continue
            drawn = self.drawn.setdefault(key, set())
            metrics = reported
            if result.get("done"):
                # The trial's last result: its final metrics reach MLflow once, from result.json at
                # step 0 (Tracker.finish); only the curves drawn so far get their last point here,
                # from the member's own result (a group's last step reports no member's values).
                own = (self.store.result(key) or {}).get("metrics") or reported
                metrics = {k: v for k, v in own.items() if k in drawn and isinstance(v, (int, float))}
            drawn.update(metrics)
            self._open(key)
            self.mirror.progress(key, metrics, step)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for key in member_keys(trial):
            if self.store.state(key, launcher_alive=True).status in (RUNNING, FAILED):
                # Tune ended it without an error of its own and it wrote no result: the scheduler
                # stopped it early. A failure it recorded on the way down (a Ray Train run whose
                # workers went with it) is part of that stop, not a failure of the trial.
                self.stopped_record(key, dict(trial.last_result or {}))
            self._release(key)
            self._finish(key)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for key in member_keys(trial):
            if not self._recorded_last_attempt(key):
                # The worker died without writing (killed, out of memory): record Ray's reason.
                self.failed_record(key, _error_text(trial))
            self._release(key)
            self._finish(key)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _error_text(trial)
        for key in member_keys(trial):
            self._release(key)  # before the retry asks for the same resources again
            if self.store.is_done(key):
                self._finish(key)  # a member that finished before others of its group failed
                continue
            if key in self.reported:
                continue
            if storage_full.note(error, f"trial {key}'s folder") or storage_full.first():
                return  # no retry line: the launcher stops the sweep and says why once
            self.console.print(f"[yellow]↻[/] {self.names.get(key, key)}  [dim]{key}[/]  {self._retrying(key, error)}")

    def _retrying(self, key: str, error: str) -> str:
        """Why Tune retries the trial, in one line: what died under it, else the error it recorded.

        A lost node or process leaves the trial no chance to record anything (or leaves a record
        of an earlier attempt), so Ray's report in Tune's error file says what happened.
        """
        died = _death(_last_failure(error))
        if died:
            return f"retrying: {escape(died)}"
        record = self.store.result(key) or {}
        reason = _headline(record) if record.get("status") == FAILED_STATUS else ""
        return f"retrying after an error: {reason}" if reason else "retrying after an error"

    def _recorded_last_attempt(self, key: str) -> bool:
        """Whether the trial's latest attempt wrote its own result (done or failed with its own error)."""
        record, started = self.store.result(key), self.store.started(key)
        if record is None:
            return False
        return started is None or record.get("attempt") == started.get("attempt")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.progress.stop()

    def close(self) -> None:
        self.progress.stop()


_TUNE_KEYS = {
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_total",
    "episodes_total",
    "timesteps_since_restore",
    "pid",
    "node_ip",
    "hostname",
    "date",
    "experiment_id",
    "trial_id",
    "done",
    "config",
    "should_checkpoint",
    "checkpoint_dir_name",
    "experiment_tag",
}


def _headline(record: Mapping[str, Any]) -> str:
    """The first line of a recorded failure, short enough for one console line ("" if none)."""
    lines = (record.get("error") or {}).get("message", "").splitlines()
    return lines[0][:160] if lines else ""


#: how Tune heads each failure in a trial's error file (one file for all of a trial's failures)
_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)\n", re.MULTILINE)
#: how Ray's ActorDiedError begins when the actor's process or node died (not an error it raised)
_ACTOR_DIED = "The actor died unexpectedly before finishing this task."
_NODE_DIED = re.compile(r"its node has died\. Node Id: (?P<node>[0-9a-f]+)")
_NODE_IP = re.compile(r"^\s*ip: (?P<ip>\S+)$", re.MULTILINE)
_NODE_WHY = re.compile(r"node was terminated[^:\n]*: (?P<why>.+)")


def _last_failure(error: str) -> str:
    """The latest failure in a trial's error text (Tune appends one entry per failure)."""
    return _FAILURE_HEADER.split(error)[-1].strip()


def _death(failure: str) -> str:
    """What died under a trial whose Ray actor was lost, e.g. "its node 127.0.0.1 (3f2a91c0) died: …";
    "" when the failure is an error the trial raised (Ray's report of it starts otherwise)."""
    if not failure.startswith(_ACTOR_DIED):
        if failure.startswith("The actor ") and " is unavailable: " in failure:
            return "its Ray actor stopped answering (its node or process died)"
        return ""
    node = _NODE_DIED.search(failure)
    if node:
        ip = _NODE_IP.search(failure)
        why = _NODE_WHY.search(failure)
        where = f"{ip.group('ip')} ({node.group('node')[:8]})" if ip else node.group("node")[:8]
        return f"its node {where} died" + (f": {why.group('why').strip()[:120]}" if why else "")
    # the process died on a live node (killed, out of memory): Ray's cause follows its actor fields
    cause = next((line for line in failure.splitlines()[1:] if line and not line.startswith("\t")), "")
    return f"its process died: {cause[:140]}" if cause else "its process died"


def _error_text(trial: Any) -> str:
    for attr in ("error_msg",):
        text = getattr(trial, attr, None)
        if text:
            return str(text)
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as handle:
                return handle.read()[-4000:]
        except OSError:
            pass
    return "the trial's worker died without reporting an error"
