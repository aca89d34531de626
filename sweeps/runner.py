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
from typing import Any

from rich.console import Console

from sweeps.errors import FieldError, SpecError
from sweeps.plan import Plan, Trial
from sweeps.store import DONE, FAILED, PENDING, STOPPED, SweepStore
from sweeps.tracking import Tracker
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
    runs_url: str = ""
    tracking_uri: str = ""

    @property
    def failed(self) -> int:
        return self.counts[FAILED]


#: Python processes a local sweep may start at once. Ray expects about one per CPU and warns
#: at four times that ("N PYTHON worker processes have been started ..."), but a training
#: trial is by design several processes that hold no CPU (its driver, the Ray Train
#: controller and its helpers) beside its workers: two concurrent trials on 2 CPUs already
#: make nine. Ray's expectation is raised to match, which silences that warning at its source.
LOCAL_PROCESSES = 8


def local_cpus() -> int:
    """CPUs this process may use (cgroup/affinity aware), so a local Ray never oversubscribes."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def connect_ray(address: str | None, verbose: bool = False) -> bool:
    """Connect to ``address``/``RAY_ADDRESS``, or start a local Ray sized to this machine.

    Returns whether this call started Ray (and so should shut it down).
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": verbose}
    if address:
        ray.init(address=address, **common)
    else:
        # Ray announces on every local start that it enabled token authentication by default
        # (which it keeps doing); the notice asks nothing of the user.
        cpus = local_cpus()
        with quiet(("ray._private.authentication.authentication_token_setup",)):
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                object_store_memory=512 * 1024**2,
                _system_config={"worker_maximum_startup_concurrency": max(cpus, LOCAL_PROCESSES)},
                **common,
            )
    return True


def check_capacity(spec_resources: Any, local: bool) -> None:
    """Fail before launch when no node could ever hold one trial (Tune would wait forever)."""
    import ray

    total = ray.cluster_resources()
    have_cpu, have_gpu = total.get("CPU", 0), total.get("GPU", 0)
    problems = []
    if spec_resources.gpu > have_gpu:
        problems.append(
            FieldError(
                "resources.gpu",
                f"each trial asks for {spec_resources.gpu:g} GPU but the Ray cluster has {have_gpu:g}",
                spec_resources.gpu,
                hint="set resources: {gpu: 0} to run on CPUs, or connect to a GPU cluster with --address",
            )
        )
    if spec_resources.cpu > have_cpu:
        problems.append(
            FieldError(
                "resources.cpu",
                f"each trial asks for {spec_resources.cpu:g} CPUs but the Ray cluster has {have_cpu:g}",
                spec_resources.cpu,
                hint=f"lower resources.cpu to at most {have_cpu:g}",
            )
        )
    if problems and local:
        raise SpecError(problems)
    for problem in problems:  # an autoscaling cluster may still grow
        log.warning(problem.render())


def trial_config(plan: Plan, trial: Trial, store: SweepStore) -> dict:
    return {
        "params": trial.config,
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


def driver_records(store: SweepStore, plan: Plan):
    """Writers for the results a trial cannot write itself: a failure when its worker died,
    and an early stop by the scheduler (with the metrics Tune last received)."""
    from sweeps.trial import TrialRecorder

    by_key = plan.by_key()
    stopped_by = f"{plan.spec.scheduler.type} on {plan.spec.scheduler.metric}" if plan.spec.scheduler else "tune"

    def recorder(key: str) -> TrialRecorder:
        return TrialRecorder(trial_config(plan, by_key[key], store), resume_attempt=True)

    def failed(key: str, message: str) -> dict:
        return recorder(key).fail(RuntimeError(message.strip().splitlines()[-1] if message.strip() else message))

    def stopped(key: str, last_result: dict) -> dict:
        return recorder(key).stop(last_result, stopped_by)

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
    store.save_spec(raw)
    store.save_plan(plan.records())
    store.mark_launch()
    summary = LaunchSummary()
    tracker = Tracker(spec.tracking, spec.storage_path, spec.experiment_name, spec.name)
    summary.tracking_uri = tracker.uri
    summary.runs_url = tracker.runs_url()
    names = {t.key: plan.run_name(t) for t in plan.trials}
    params = {t.key: t.config for t in plan.trials}
    status = "FINISHED"
    started_ray = False
    try:
        tracker.open_parent(plan.workload.name, raw, versions())
        synced = tracker.sync(store, names, params, plan.workload.name)
        if synced:
            console.print(f"[dim]MLflow: mirrored {synced} result(s) that finished while no launcher was listening[/]")
        pending = [t for t in plan.trials if not store.is_done(t.key)]
        summary.skipped = len(plan.trials) - len(pending)
        if summary.skipped:
            console.print(f"Skipping {summary.skipped} completed trial(s); {len(pending)} to run.")
        if pending:
            started_ray = connect_ray(address, verbose)
            check_capacity(spec.resources, local=not (address or os.environ.get("RAY_ADDRESS")))
            summary.ran = len(pending)
            _run_tune(plan, pending, store, tracker, names, params, console, reuse_actors)
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
        try:
            tracker.mark_interrupted(interrupted)
            tracker.close_parent(
                {
                    "total": len(plan.trials),
                    "done": summary.counts[DONE],
                    "stopped": summary.counts[STOPPED],
                    "failed": summary.counts[FAILED],
                    "pending": summary.counts[PENDING],
                },
                status,
            )
        except Exception as exc:
            console.print(f"[yellow]MLflow: could not close the sweep's run: {exc}[/]")
        if started_ray:
            import ray

            ray.shutdown()
    return summary


def _run_tune(
    plan: Plan,
    pending: list[Trial],
    store: SweepStore,
    tracker: Tracker,
    names: dict,
    params: dict,
    console: Console,
    reuse_actors: bool | None = None,
) -> None:
    from ray import tune

    from sweeps.callbacks import SweepCallback
    from sweeps.trial import wrap

    spec = plan.spec
    workload = plan.workload
    configs = [trial_config(plan, t, store) for t in pending]
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    trainable = tune.with_resources(
        wrap(workload.trainable()), lambda config: workload.resources(config["trial"]["params"], cpu, gpu)
    )
    failed, stopped = driver_records(store, plan)
    if spec.scheduler is not None:
        # Trials may report the scheduler's metric only on some results (a training's eval_loss
        # at its evaluation steps, between per-step train metrics); ASHA decides on those that
        # carry it. Tune would otherwise fail the sweep at the first result without it.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    callback = SweepCallback(
        store,
        tracker,
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
            trial_name_creator=lambda t: t.config["trial"]["context"]["key"],
            trial_dirname_creator=lambda t: t.config["trial"]["context"]["key"],
        ),
        run_config=tune.RunConfig(
            name=time.strftime("launch-%Y%m%d-%H%M%S"),
            storage_path=str(store.root / "_tune"),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            callbacks=[callback],
            # Trials checkpoint themselves where it matters (Ray Train); an evaluation restarts.
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False, checkpoint_frequency=0),
            verbose=0,
        ),
    )
    with quiet(_TUNE_REPEATS):
        try:
            tuner.fit()
        finally:
            callback.close()


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
