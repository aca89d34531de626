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
from sweeps.workload import GroupResult, TrialResult

FAILED_STATUS = "failed"


def split_result(result: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Separate numeric metrics from the rest; NaN/inf are dropped, never logged as numbers."""
    metrics: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for key, value in result.items():
        if key == "done":
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
        #: whether this attempt's result.json is written
        self.recorded = False
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
        self.recorded = True
        return record

    def complete(self, result: TrialResult) -> dict[str, Any]:
        metrics, extra = split_result(result.metrics)
        artifacts = [a for a in result.artifacts if (self.trial_dir / a).exists()]
        return self._record(
            COMPLETED_STATUS,
            metrics=metrics,
            info={**result.info, **extra},
            tags=dict(result.tags),
            artifacts=artifacts,
            missing=dict(result.missing),
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


class MembersFailed(RuntimeError):
    """Some members of a trial group failed (each recorded with its own error); the others finished.

    Raised after the group's results are recorded, so that Tune retries the group (``retries``):
    a retry runs only the members without a finished result.
    """


class GroupRecorder:
    """Records every member of one Ray Tune trial: a trial group, or a single trial as a group of one."""

    def __init__(self, group_config: Mapping[str, Any]):
        configs = list(group_config["members"])
        store = SweepStore(Path(configs[0]["context"]["trial_dir"]).parent)
        #: members with nothing left to run (finished in an earlier try of this group) are not run again
        self.configs = [c for c in configs if not store.is_done(c["context"]["key"])]
        self.recorders = {c["context"]["key"]: TrialRecorder(c) for c in self.configs}

    def begin(self) -> None:
        for recorder in self.recorders.values():
            recorder.begin()

    def fail(self, exc: BaseException) -> None:
        """The whole group failed (its setup or a step raised): every member not yet recorded fails with it."""
        for recorder in self.recorders.values():
            if not recorder.recorded:
                recorder.fail(exc)

    def finish(self, outcome: TrialResult | GroupResult) -> dict[str, float]:
        """Record each member's result or failure; raises MembersFailed when any member failed.

        Returns the metrics Tune sees: a single trial's own (its scheduler may use them), else none.
        """
        if isinstance(outcome, TrialResult):
            if len(self.recorders) != 1:
                raise TypeError(f"a group of {len(self.recorders)} trials ended with one TrialResult")
            outcome = GroupResult(results={next(iter(self.recorders)): outcome})
        for key, recorder in self.recorders.items():
            if key in outcome.results:
                recorder.complete(outcome.results[key])
            else:
                recorder.fail(outcome.failures.get(key) or RuntimeError("the group ended without a result for it"))
        failed = [key for key in self.recorders if key not in outcome.results]
        if failed:
            raise MembersFailed(_failed_members(failed, outcome.failures, len(self.recorders)))
        if len(self.recorders) == 1:
            return split_result(next(iter(outcome.results.values())).metrics)[0]
        return {}


def _failed_members(keys: list[str], failures: Mapping[str, BaseException], size: int) -> str:
    shown = "; ".join(
        f"{k}: {type(failures[k]).__name__}: {scrub(str(failures[k]))[:200]}" for k in keys if k in failures
    )
    return f"{len(keys)} of {size} member(s) of the trial group failed ({shown})"


def public_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """What Tune sees of a step's progress: its metrics, without anything else."""
    metrics, _ = split_result(result)
    return dict(metrics)


def is_final(result: object) -> bool:
    return isinstance(result, (TrialResult, GroupResult))


def wrap_class(cls: type, grouped: bool) -> type:
    """A subclass of a Tune class trainable that records its trials.

    Tune's config nests the trial group under ``"trial"`` so that one grid-search axis carries
    whole groups. The workload's trainable receives the group (``grouped``) or its one member.
    """

    class Recorded(cls):
        # private (name-mangled) attributes: the workload's own trainable may use any other name

        def __begin(self, config: dict) -> dict | None:
            enter_launch_dir(config["trial"]["members"][0])
            self.__group = GroupRecorder(config["trial"])
            # An attempt is recorded (started.json) once Tune runs it, at its first step, not
            # here: Tune may drop an actor still in its constructor (its node died while the model
            # loaded, or a freed actor took the trial over), and such a start is no attempt.
            self.__begun = False
            if not self.__group.configs:
                return None  # every member finished in an earlier try: nothing to run
            return {"members": self.__group.configs} if grouped else self.__group.configs[0]

        def __record_start(self) -> None:
            if not self.__begun:
                self.__group.begin()
                self.__begun = True

        def __fail(self, exc: BaseException) -> None:
            self.__record_start()  # a failed attempt is an attempt: its result and start agree
            self.__group.fail(exc)

        def setup(self, config: dict) -> None:
            inner = self.__begin(config)
            if inner is None:
                return
            try:
                super().setup(inner)
            except BaseException as exc:
                self.__fail(exc)
                raise

        def reset_config(self, new_config: dict) -> bool:
            inner = self.__begin(new_config)
            if inner is None:
                return True
            try:
                return bool(super().reset_config(inner))
            except BaseException as exc:
                self.__fail(exc)
                raise

        def step(self) -> dict:
            if not self.__group.configs:
                return {"done": True}
            self.__record_start()
            try:
                result = super().step()
            except BaseException as exc:
                self.__fail(exc)
                raise
            if is_final(result):
                return {**self.__group.finish(result), "done": True}
            return public_result(result)

    Recorded.__name__ = Recorded.__qualname__ = cls.__name__
    return Recorded


def wrap_function(fn: Callable[[dict], TrialResult]) -> Callable[[dict], None]:
    """A Tune function trainable that records its trial; ``fn`` returns the trial's TrialResult.

    Function trainables run one trial each (their workloads never group trials).
    """
    from ray import tune

    def recorded(config: dict) -> None:
        member = config["trial"]["members"][0]
        enter_launch_dir(member)
        group = GroupRecorder(config["trial"])
        group.begin()
        if not group.configs:
            return
        try:
            final = fn(group.configs[0])
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
            group.fail(exc)
            raise
        tune.report(group.finish(final))

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


def wrap(trainable: Any, grouped: bool = False) -> Any:
    """Wrap a class or function trainable; ``grouped``: it takes whole trial groups."""
    if isinstance(trainable, type):
        return wrap_class(trainable, grouped)
    if grouped:
        raise TypeError("trial groups need a class trainable (a function trainable runs one trial)")
    return wrap_function(trainable)
