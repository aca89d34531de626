"""Launching a sweep on Ray Tune: what is left of the plan runs, everything else is skipped.

Each launch is a fresh Tune run over the trials that have not completed, not a restore
of Tune's own state: so the same code path serves a first launch, a relaunch after the
grid grew, and a resume after the launcher was killed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console

from sweeps import storage_full
from sweeps.errors import FieldError, SpecError
from sweeps.groups import TrialGroup, concurrent_slots, describe, plan_groups
from sweeps.mirror import Mirror
from sweeps.plan import Plan, Trial
from sweeps.raycluster import (  # noqa: F401 (re-exported)
    LOCAL_PROCESSES,
    connect_ray,
    local_cpus,
    prepare_ray,
    ray_totals,
)
from sweeps.secrets import redact
from sweeps.store import DONE, FAILED, PENDING, STOPPED, SweepStore
from sweeps.tracking import connect
from sweeps.versions import versions

log = logging.getLogger(__name__)

# Tune's newer console reporter prints every trial error with a path into /tmp/ray even at
# verbose=0; the sweep callback already reports each failure with its reason, so use the
# reporter that honours verbose=0.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@dataclass
class LaunchSummary:
    """What a launch did, for the CLI's closing table and exit code."""

    counts: Counter = field(default_factory=Counter)
    skipped: int = 0
    ran: int = 0
    #: keys of the trials this launch ran
    ran_keys: list[str] = field(default_factory=list)
    #: wall time of the launch, set-up included
    seconds: float = 0.0
    runs_url: str = ""
    tracking_uri: str = ""

    @property
    def failed(self) -> int:
        return self.counts[FAILED]


def trial_config(plan: Plan, trial: Trial, store: SweepStore) -> dict:
    """What Tune holds of a trial (and writes under storage/_tune): secrets redacted, see trial_secrets."""
    return {
        "params": redact(trial.config),
        "context": {
            "sweep": plan.spec.name,
            "key": trial.key,
            "trial_dir": str(store.trial_dir(trial.key)),
            "workload": plan.workload.name,
            # relative paths in the file (models, data) mean what they mean where the sweep was launched
            "launch_dir": os.getcwd(),
            # the file's per-trial resources, for trainables that launch workers of their own (Ray Train)
            "resources": {"cpu": plan.spec.resources.cpu, "gpu": plan.spec.resources.gpu},
        },
    }


def group_config(plan: Plan, group: TrialGroup, store: SweepStore) -> dict:
    """What Tune holds of one trial group (a single trial is a group of one)."""
    return {"members": [trial_config(plan, t, store) for t in group.members]}


def driver_records(store: SweepStore, plan: Plan):
    """Writers for the results a trial cannot write itself: a failure when its worker died,
    and an early stop by the scheduler (with the metrics Tune last received)."""
    from sweeps.trial import TrialRecorder

    by_key = plan.by_key()
    stopped_by = f"{plan.spec.scheduler.type} on {plan.spec.scheduler.metric}" if plan.spec.scheduler else "tune"

    def recorder(key: str) -> TrialRecorder:
        return TrialRecorder(trial_config(plan, by_key[key], store), resume_attempt=True)

    def failed(key: str, message: str) -> dict:
        # A trial that could not write for lack of space did not fail: the storage did, and the
        # sweep stops (the trial runs again at `sweeps resume`). Nothing is written then.
        if storage_full.note(message, f"trial {key}'s folder") or storage_full.first():
            return {}
        try:
            return recorder(key).fail(RuntimeError(message.strip().splitlines()[-1] if message.strip() else message))
        except storage_full.StorageFull:
            return {}

    def stopped(key: str, last_result: dict) -> dict:
        if storage_full.first():  # stopped by the full storage, not by the scheduler: not final
            return {}
        try:
            return recorder(key).stop(last_result, stopped_by)
        except storage_full.StorageFull:
            return {}

    return failed, stopped


def make_scheduler(spec):
    """Ray Tune's ASHA from the sweep file's ``scheduler`` section (None: every trial runs to the end)."""
    if spec.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    s = spec.scheduler
    return ASHAScheduler(
        time_attr=s.time_attr,
        metric=s.metric,
        mode=s.mode,
        max_t=s.max_t,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
        # a trial that survives every rung runs to its own end and counts as done, not stopped
        stop_last_trials=False,
    )


def summarize(store: SweepStore, plan: Plan) -> Counter:
    alive = store.launcher_alive()
    return Counter(store.state(t.key, alive).status for t in plan.trials)


def launch(
    plan: Plan,
    raw: dict,
    *,
    address: str | None = None,
    console: Console | None = None,
    verbose: bool = False,
    reuse_actors: bool | None = None,
) -> LaunchSummary:
    """Run every trial of ``plan`` that has not completed; mirror all of it to MLflow.

    ``reuse_actors`` overrides the workload's choice (the model-reuse benchmark compares both).
    """
    console = console or Console()
    began = time.monotonic()
    spec = plan.spec
    store = SweepStore(spec.sweep_dir)
    other = store.launcher()
    if other and store.launcher_alive() and other.get("pid") != os.getpid():
        raise SpecError(
            [
                FieldError(
                    "name",
                    f"sweep {spec.name!r} is already being launched by pid {other['pid']} on {other['host']}",
                    spec.name,
                    hint="wait for it, or stop it before resuming",
                )
            ]
        )
    storage_full.reset()
    too_small = storage_full.space_problem(spec.storage_path, embedded_tracking=not spec.tracking)
    if too_small:
        raise SpecError([FieldError("storage", too_small, spec.storage)])
    storage_full.watch_libraries()
    # A trial no node can hold, or a Ray address that does not answer, is bad input: exit 2 before
    # anything is written (a local Ray starts only once the trials are known to fit).
    ray_choice = prepare_ray(plan, [t for t in plan.trials if not store.is_done(t.key)], address, console, verbose)
    # An unreachable tracking server is reported within seconds, before anything is written.
    tracker = connect(spec.tracking, spec.storage_path, spec.experiment_name, spec.name)
    store.save_spec(raw)
    store.save_plan(plan.records())
    store.mark_launch()
    summary = LaunchSummary()
    summary.tracking_uri = tracker.uri
    summary.runs_url = tracker.runs_url()
    names = {t.key: plan.run_name(t) for t in plan.trials}
    params = {t.key: t.config for t in plan.trials}
    status = "FINISHED"
    started_ray = False
    # Every MLflow request from here on happens in the mirror's thread: trials never wait for it.
    mirror = Mirror(tracker, console)
    mirror.start()
    try:
        mirror.submit("open the sweep's run", lambda: tracker.open_parent(plan.workload.name, raw, versions()))
        mirror.sync(store, names, params, plan.workload.name)
        pending = [t for t in plan.trials if not store.is_done(t.key)]
        summary.skipped = len(plan.trials) - len(pending)
        if summary.skipped:
            console.print(f"Skipping {summary.skipped} completed trial(s); {len(pending)} to run.")
        if pending:
            started_ray = ray_choice.start()
            summary.ran = len(pending)
            summary.ran_keys = [t.key for t in pending]
            cpus, gpus = ray_totals()
            slots = concurrent_slots(spec.max_concurrent, cpus, gpus, spec.resources.cpu, spec.resources.gpu)
            groups = plan_groups(plan, pending, slots)
            if len(groups) < len(pending):
                console.print(f"Trial groups: {describe(groups)}.")
            _run_tune(plan, groups, store, mirror, names, params, console, reuse_actors)
    except KeyboardInterrupt:
        status = "KILLED"
        console.print("[yellow]Interrupted: finished trials are kept; `sweeps resume` runs the rest.[/]")
    finally:
        store.clear_launch()  # from here on, a started trial without a result was interrupted
        summary.counts = summarize(store, plan)
        if summary.counts[PENDING]:
            status = "KILLED"
        elif status == "FINISHED" and summary.counts[FAILED]:
            status = "FAILED"
        interrupted = [
            t.key for t in plan.trials if store.started(t.key) and store.state(t.key, False).status == PENDING
        ]
        counts = {
            "total": len(plan.trials),
            "done": summary.counts[DONE],
            "stopped": summary.counts[STOPPED],
            "failed": summary.counts[FAILED],
            "pending": summary.counts[PENDING],
        }
        mirror.submit("mark interrupted trials", lambda: tracker.mark_interrupted(interrupted))
        mirror.submit("close the sweep's run", lambda: tracker.close_parent(counts, status))
        # The sweep's run answers it (best trials, front, missing cells, the report): drawn from
        # storage here, written by the mirror like the rest; a failure is said once, fails nothing.
        from sweeps import summary_run

        answer = None if storage_full.first() else summary_run.refresh_after_launch(store, console)
        if answer is not None:
            mirror.submit("summarize the sweep in its run", lambda: summary_run.write(tracker, answer))
        mirror.close()  # bounded: what the server did not take is mirrored by the next launch
        summary.runs_url = tracker.runs_url()  # in the sweep's saved view once it is written
        if started_ray:
            import ray

            ray.shutdown()
    summary.seconds = time.monotonic() - began
    full = storage_full.first()
    if full:  # one message instead of every library's error; trials cut off run again at resume
        kept = summary.counts[DONE] + summary.counts[STOPPED]
        raise storage_full.SweepStoppedFull(
            storage_full.stopped_message(full, spec.storage, spec.name, kept, len(plan.trials))
        )
    return summary


def _run_tune(
    plan: Plan,
    groups: list[TrialGroup],
    store: SweepStore,
    mirror: Mirror,
    names: dict,
    params: dict,
    console: Console,
    reuse_actors: bool | None = None,
) -> None:
    from ray import tune

    from sweeps.callbacks import SweepCallback
    from sweeps.trial import wrap
    from sweeps.trial_secrets import held_secrets, with_secrets

    spec = plan.spec
    workload = plan.workload
    pending = [t for g in groups for t in g.members]
    configs = [group_config(plan, g, store) for g in groups]
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    secrets = {t.key: held for t in pending if (held := held_secrets(t.config))}
    # a workload that groups any of these trials takes every trial as a group (of one, at least)
    grouped = any(workload.group_key(t.config) is not None for t in pending)
    trainable = tune.with_resources(
        with_secrets(wrap(workload.trainable(), grouped=grouped), secrets),
        # members of a group agree on everything but what they share, resources included
        lambda config: workload.resources(config["trial"]["members"][0]["params"], cpu, gpu),
    )
    failed, stopped = driver_records(store, plan)
    if spec.scheduler is not None:
        # Trials may report the scheduler's metric only on some results (a training's eval_loss
        # at its evaluation steps, between per-step train metrics); ASHA decides on those that
        # carry it. Tune would otherwise fail the sweep at the first result without it.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    callback = SweepCallback(
        store,
        mirror,
        names,
        params,
        workload.name,
        tuple(workload.key_metrics),
        len(pending),
        console,
        failed,
        stopped,
        lambda key: workload.release(store.trial_dir(key)),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=spec.max_concurrent,
            scheduler=make_scheduler(spec),
            reuse_actors=workload.reuse_actors if reuse_actors is None else reuse_actors,
            trial_name_creator=lambda t: group_name(t.config["trial"]),
            trial_dirname_creator=lambda t: group_name(t.config["trial"]),
        ),
        run_config=tune.RunConfig(
            name=time.strftime("launch-%Y%m%d-%H%M%S"),
            storage_path=str(store.root / "_tune"),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            callbacks=[callback],
            stop=_stop_when_full(),
            # Trials checkpoint themselves where it matters (Ray Train); an evaluation restarts.
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False, checkpoint_frequency=0),
            verbose=0,
        ),
    )
    with quiet(_TUNE_REPEATS):
        try:
            tuner.fit()
        except Exception:
            # On a full storage Tune fails reading back its own files (the ResultGrid, which the
            # platform does not use); the launcher reports the full storage instead.
            if storage_full.first() is None:
                raise
        finally:
            callback.close()


def group_name(group: dict) -> str:
    """Tune's name for a trial group: its first member's key, and how many more ride along."""
    keys = [m["context"]["key"] for m in group["members"]]
    return keys[0] if len(keys) == 1 else f"{keys[0]}+{len(keys) - 1}"


def _stop_when_full():
    """A Tune stopper that ends the sweep once a write has failed for lack of space (in any thread)."""
    from ray.tune.stopper import Stopper

    class StopWhenFull(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return storage_full.first() is not None

    return StopWhenFull()


#: Tune loggers that repeat, in Tune's words, what the sweep callback already reports: each
#: failed trial with its full traceback (kept in result.json), "Trials did not complete",
#: and a warning that the ResultGrid (which the platform does not use) lacks failed trials.
_TUNE_REPEATS = (
    "ray.tune.execution.tune_controller",
    "ray.tune.tune",
    "ray.tune.analysis.experiment_analysis",
)


@contextmanager
def quiet(names: tuple[str, ...]) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
