"""The trial side of the bookkeeping: wraps a workload's trainable so every trial records itself.

Runs inside Ray workers. The trial writes ``started.json`` when it begins and
``result.json`` when it ends — completed or failed — into its own folder in storage,
before Tune or the driver hear about it. So a result survives a driver that is killed
the moment after, and `sweeps resume` knows exactly what finished.
"""

from __future__ import annotations

import math
import os
import socket
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweeps import storage_full
from sweeps.secrets import redact, remember, scrub
from sweeps.store import COMPLETED_STATUS, STOPPED_STATUS, SweepStore, now
from sweeps.versions import versions
from sweeps.workload import ARTIFACTS, INFO, MISSING, TAGS

FAILED_STATUS = "failed"


def split_result(result: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Separate numeric metrics from the rest; NaN/inf are dropped, never logged as numbers."""
    metrics: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for key, value in result.items():
        if key in (ARTIFACTS, INFO, TAGS, MISSING, "done"):
            continue
        if isinstance(value, bool):
            metrics[key] = float(value)
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                metrics[key] = float(value)
        else:
            extra[key] = value
    return metrics, extra


def enter_launch_dir(trial_config: Mapping[str, Any]) -> None:
    """Run the trial where the sweep was launched, so relative paths in the file resolve as there.

    Ray Tune starts trials in their own folder; on a node where the launch folder does not
    exist (another machine), the trial stays where Ray put it and needs absolute paths.
    """
    launch_dir = trial_config["context"].get("launch_dir")
    if launch_dir and os.path.isdir(launch_dir):
        os.chdir(launch_dir)


class TrialRecorder:
    """Writes one trial attempt's ``started.json`` and ``result.json``."""

    def __init__(self, trial_config: Mapping[str, Any], resume_attempt: bool = False):
        """``resume_attempt`` records on the attempt that last started (for the driver,
        when a worker died before it could write its own result)."""
        context = trial_config["context"]
        self.key = context["key"]
        self.sweep = context["sweep"]
        self.workload = context["workload"]
        self.trial_dir = Path(context["trial_dir"])
        self.store = SweepStore(self.trial_dir.parent)
        self.params = redact(trial_config["params"])
        remember(trial_config["params"])  # an error that quotes this trial's secret is recorded without it
        previous = self.store.started(self.key) or {}
        if resume_attempt and previous:
            self.attempt = int(previous.get("attempt", 1))
            self.started_at = float(previous.get("time", now()))
        else:
            self.attempt = int(previous.get("attempt", 0)) + 1
            self.started_at = now()

    def begin(self) -> None:
        self.store.write_started(
            self.key,
            {
                "attempt": self.attempt,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": self.started_at,
            },
        )

    def _record(self, status: str, **fields: Any) -> dict[str, Any]:
        finished = now()
        record = {
            "sweep": self.sweep,
            "key": self.key,
            "workload": self.workload,
            "status": status,
            "params": self.params,
            "metrics": {},
            "info": {},
            "tags": {},
            "artifacts": [],
            "missing": {},
            "error": None,
            "attempt": self.attempt,
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "finished_at": finished,
            "duration_s": finished - self.started_at,
            "versions": versions(),
            **fields,
        }
        self.store.write_result(self.key, record)
        return record

    def complete(self, result: Mapping[str, Any]) -> dict[str, Any]:
        metrics, extra = split_result(result)
        info = {**dict(result.get(INFO) or {}), **extra}
        artifacts = [a for a in result.get(ARTIFACTS) or [] if (self.trial_dir / a).exists()]
        return self._record(
            COMPLETED_STATUS,
            metrics=metrics,
            info=info,
            tags=dict(result.get(TAGS) or {}),
            artifacts=artifacts,
            missing=dict(result.get(MISSING) or {}),
        )

    def stop(self, last_result: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Record a trial the scheduler ended early, with the metrics it had reported by then."""
        metrics, _ = split_result(last_result)
        return self._record(STOPPED_STATUS, metrics=metrics, stopped_by=by)

    def fail(self, exc: BaseException) -> dict[str, Any]:
        if storage_full.means_full(exc):
            # The storage failed, not the trial: nothing is recorded (there is no room anyway), the
            # launcher stops the sweep and the trial runs again at `sweeps resume`.
            raise exc
        current = self.store.result(self.key)
        if current and current.get("status") == STOPPED_STATUS and current.get("attempt") == self.attempt:
            # The scheduler already ended this attempt; its work failing on the way down stays a stop.
            return current
        error = {
            "type": type(exc).__name__,
            "message": scrub(str(exc) or type(exc).__name__),
            "traceback": scrub("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))[-20000:],
        }
        return self._record(FAILED_STATUS, error=error)


def public_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """What Tune sees of a step's result: metrics and ``done``, without the bookkeeping keys."""
    metrics, _ = split_result(result)
    out: dict[str, Any] = dict(metrics)
    if result.get("done"):
        out["done"] = True
    return out


def wrap_class(cls: type) -> type:
    """A subclass of a Tune class trainable that records its trials.

    The workload's trainable receives ``{"params", "context"}``; Tune's config nests that
    under ``"trial"`` so that one grid-search axis carries whole trials.
    """

    class Recorded(cls):
        def setup(self, config: dict) -> None:
            enter_launch_dir(config["trial"])
            self._recorder = TrialRecorder(config["trial"])
            self._recorder.begin()
            try:
                super().setup(config["trial"])
            except BaseException as exc:
                self._recorder.fail(exc)
                raise

        def reset_config(self, new_config: dict) -> bool:
            enter_launch_dir(new_config["trial"])
            self._recorder = TrialRecorder(new_config["trial"])
            self._recorder.begin()
            try:
                return bool(super().reset_config(new_config["trial"]))
            except BaseException as exc:
                self._recorder.fail(exc)
                raise

        def step(self) -> dict:
            try:
                result = super().step()
            except BaseException as exc:
                self._recorder.fail(exc)
                raise
            if result.get("done"):
                self._recorder.complete(result)
            return public_result(result)

    Recorded.__name__ = Recorded.__qualname__ = cls.__name__
    return Recorded


def wrap_function(fn: Callable[[dict], Mapping[str, Any] | None]) -> Callable[[dict], None]:
    """A Tune function trainable that records its trial; ``fn`` returns the final result."""
    from ray import tune

    def recorded(config: dict) -> None:
        enter_launch_dir(config["trial"])
        recorder = TrialRecorder(config["trial"])
        recorder.begin()
        try:
            final = fn(config["trial"]) or {}
        except SystemExit:
            # Tune ends a trial its scheduler stopped by raising SystemExit in report(): not a
            # failure. The driver records it as stopped, with the metrics Tune last received.
            raise
        except BaseException as exc:
            if _stopped_by_tune():
                # Stopped while waiting on work elsewhere (a Ray Train run, whose workers go down
                # with this actor): that work fails with the stop. Not a failure of the trial:
                # the driver records it as stopped.
                raise
            recorder.fail(exc)
            raise
        recorder.complete(final)
        tune.report(public_result(final))

    recorded.__name__ = getattr(fn, "__name__", "trial")
    return recorded


def _stopped_by_tune() -> bool:
    """Whether Tune has asked this function trainable to stop (its scheduler ended the trial)."""
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # a Ray without Tune's function session: nothing can have been asked
        return False
    session = get_session()
    stop = getattr(session, "stop_event", None)
    return bool(stop is not None and stop.is_set())


def wrap(trainable: Any) -> Any:
    """Wrap a class or function trainable."""
    return wrap_class(trainable) if isinstance(trainable, type) else wrap_function(trainable)
