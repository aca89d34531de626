"""What the sweep driver costs per trial: hundreds of no-model trials through the platform and bare Ray Tune.

The same trials (the ``noop`` workload: each sleeps ``--seconds`` and reports one metric) run
three ways on one Ray, with the same concurrency and per-trial resources:

- bare Ray Tune: a plain function trainable, no result.json, no MLflow;
- the platform (``sweeps.runner.launch``, what `sweeps launch` runs) with MLflow's embedded SQLite store;
- the platform against a real ``mlflow server`` on PostgreSQL with basic auth
  (``platform/mlflow/local-server.sh``), when PostgreSQL is installed.

It prints the wall time of each, the driver's overhead per trial against bare Tune (ms/trial and
ratio) and the MLflow mirror's throughput: when every child run was in MLflow (each run's end
time, set as the mirror finishes it), how far that was behind the last trial, and how many
results it mirrored per second. A launcher leaves at exit what the server has not taken after
its bounded wait; the benchmark then relaunches, as a user would, until every result is in
MLflow (or ``--drain-minutes`` have passed), and counts that time too.

    python benchmarks/driver_scale.py [--trials 500] [--concurrency 2] [--seconds 0] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ray import tune
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from team_server import TeamServer, missing

from sweeps.errors import SpecError
from sweeps.plan import Plan, make_plan
from sweeps.runner import connect_ray, launch
from sweeps.spec import parse
from sweeps.store import SweepStore
from sweeps.tracking import SYNCED, embedded_uri
from sweeps.workloads.noop import noop_trial

#: wide enough for the tables when the output goes to a file
console = Console(width=None if sys.stdout.isatty() else 130)


@dataclass
class Trials:
    """What every run gets: points ``xs``, each trial sleeping ``seconds``, ``concurrency`` at a time."""

    xs: list[int]
    seconds: float
    cpu: float
    concurrency: int


@dataclass
class Outcome:
    """One way of running the trials: its wall time and, for the platform, when MLflow had each result."""

    label: str
    wall_s: float
    done: int
    #: CPU time of this process (Tune's driver loop, the launcher, its MLflow mirror thread): unlike the
    #: wall time, hardly moved by other work on a shared machine
    driver_cpu_s: float = 0.0
    #: seconds from the launch's start to the last trial's result.json, and to the last run mirrored
    last_result_s: float | None = None
    last_mirrored_s: float | None = None
    first_mirrored_s: float | None = None
    #: results in MLflow when the launcher exited, and in the end
    mirrored_at_exit: int = 0
    mirrored: int = 0
    relaunches: int = 0
    #: results finished but not yet in MLflow when the last trial finished
    backlog: int = 0
    #: CPU seconds the tracking server spent (server runs only)
    server_cpu_s: float | None = None
    notes: list[str] = field(default_factory=list)


# -- bare Ray Tune ----------------------------------------------------------------------------------
def bare_trial(config: dict) -> None:
    """The noop trial as a plain Tune function trainable: its metrics reported, nothing recorded."""
    tune.report(noop_trial({"params": config}).metrics)


class AdvanceOnCompletion(tune.Callback):
    """Moves a progress bar's task on as Tune completes trials."""

    def __init__(self, progress: Progress, task: int):
        self.progress, self.task = progress, task

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self.progress.advance(self.task)

    def __getstate__(self) -> dict:  # Tune saves callbacks with its state; the progress bar stays here
        return {}


def bare_tune(label: str, trials: Trials, root: Path, progress: Progress) -> Outcome:
    """The same trials as a plain Tune function trainable: the floor the platform is measured against."""
    task = progress.add_task(label, total=len(trials.xs))
    tuner = tune.Tuner(
        tune.with_resources(bare_trial, {"cpu": trials.cpu}),
        param_space={"x": tune.grid_search(trials.xs), "seconds": trials.seconds},
        tune_config=tune.TuneConfig(max_concurrent_trials=trials.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name="bare",
            storage_path=str(root / "bare"),
            callbacks=[AdvanceOnCompletion(progress, task)],
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False, checkpoint_frequency=0),
            verbose=0,
        ),
    )
    start, cpu = time.perf_counter(), time.process_time()
    grid = tuner.fit()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Outcome(label, wall, sum(r.error is None for r in grid), cpu)


# -- the platform -----------------------------------------------------------------------------------
def platform(
    label: str,
    trials: Trials,
    storage: Path,
    progress: Progress,
    server: TeamServer | None = None,
    drain_s: float = 0.0,
) -> Outcome:
    """The trials as one sweep through ``launch``; mirror timings read back from MLflow afterwards."""
    experiment = f"scale-{storage.name}"
    raw = {
        "name": "scale",
        "workload": "noop",
        "experiment": experiment,
        "storage": str(storage),
        "tracking": server.url if server else None,
        "resources": {"cpu": trials.cpu, "gpu": 0},
        "max_concurrent": trials.concurrency,
        "fixed": {"seconds": trials.seconds},
        "grid": {"x": trials.xs},
    }
    plan = make_plan(parse(raw))
    store = SweepStore(plan.spec.sweep_dir)
    uri = server.url if server else embedded_uri(storage)
    if server:  # as a team's shared experiment would be (a fresh server's first requests are slow)
        server.create_experiment(experiment)
    cpu_before = server.cpu_seconds() if server else 0.0
    said = Console(file=io.StringIO(), width=200)
    task = progress.add_task(label, total=len(plan.trials))
    with counting(lambda: len(store.result_keys()), lambda n: progress.update(task, completed=n)) as polling:
        began = time.time()
        start, cpu = time.perf_counter(), time.process_time()
        summary = launch(plan, raw, console=said)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    outcome = Outcome(label, wall, summary.counts["done"], cpu - polling[0])
    ended = mirrored_end_times(uri, experiment)
    outcome.mirrored_at_exit = len(ended)
    if len(ended) < outcome.done and drain_s > 0:
        read = functools.partial(mirrored_end_times, uri, experiment)
        ended = relaunch_until_mirrored(plan, raw, outcome, read, ended, said, progress, drain_s)
    if server:
        outcome.server_cpu_s = server.cpu_seconds() - cpu_before
    # what the launcher said about MLflow (a server that did not answer, a backlog left at exit)
    outcome.notes += [line for line in said.file.getvalue().splitlines() if line.startswith("MLflow:")]
    finished = [record["finished_at"] for t in plan.trials if (record := store.result(t.key))]
    if finished:
        outcome.last_result_s = max(finished) - began
    if ended:
        outcome.mirrored = len(ended)
        outcome.first_mirrored_s = min(ended) - began
        outcome.last_mirrored_s = max(ended) - began
        outcome.backlog = len(finished) - sum(t <= max(finished) for t in ended)
    return outcome


@contextmanager
def counting(count: Callable[[], int], show: Callable[[int], None], every_s: float = 1.0) -> Iterator[list[float]]:
    """Show ``count()`` every ``every_s`` seconds while the block runs (launch takes no callback of ours).

    Yields a list that holds, once the block is over, the CPU seconds the counting itself used, which
    the caller takes out of the launcher's CPU time.
    """
    stop = threading.Event()
    used = [0.0]

    def poll() -> None:
        while not stop.wait(every_s):
            show(count())
        used[0] = time.thread_time()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield used
    finally:
        stop.set()
        thread.join()
        show(count())


def relaunch_until_mirrored(
    plan: Plan,
    raw: dict,
    outcome: Outcome,
    read: Callable[[], list[float]],
    ended: list[float],
    said: Console,
    progress: Progress,
    drain_s: float,
) -> list[float]:
    """Launch the finished sweep again, as a user would, while each relaunch gets more results into MLflow
    (for at most ``drain_s``); returns the mirrored runs' end times, as ``read()`` gives them."""
    task = progress.add_task(f"{outcome.label}: relaunches mirror the rest", total=outcome.done)
    progress.update(task, completed=len(ended))
    deadline = time.monotonic() + drain_s
    while len(ended) < outcome.done and time.monotonic() < deadline:
        try:  # every trial is done: the relaunch only mirrors
            launch(plan, raw, console=said)
        except SpecError as exc:  # the server did not answer the launcher in time
            outcome.notes.append(f"relaunch refused: {exc.render().splitlines()[-1].strip()}")
            break
        outcome.relaunches += 1
        before, ended = len(ended), read()
        progress.update(task, completed=len(ended))
        if len(ended) == before:
            break
    return ended


def mirrored_end_times(uri: str, experiment: str) -> list[float]:
    """When the mirror finished each child run (its end time, in epoch seconds), for runs it fully mirrored."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    times, token = [], None
    with patient_requests():
        exp = client.get_experiment_by_name(experiment)
        while exp is not None:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            for run in page:
                if run.data.tags.get("sweeps.role") != "parent" and SYNCED in run.data.tags and run.info.end_time:
                    times.append(run.info.end_time / 1000)
            token = page.token
            if not token:
                break
    return times


def patient_requests() -> contextlib.AbstractContextManager:
    """MLflow requests of this benchmark's own that wait minutes (reading back hundreds of runs from a busy
    server), whatever the launcher's bounded settings in this process are."""
    return environment({"MLFLOW_HTTP_REQUEST_TIMEOUT": "600", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})


def request_timeout(seconds: float) -> contextlib.AbstractContextManager:
    """The launcher's MLflow request timeout for one run, unless the environment already sets one."""
    if "MLFLOW_HTTP_REQUEST_TIMEOUT" in os.environ:
        return contextlib.nullcontext()
    return environment({"MLFLOW_HTTP_REQUEST_TIMEOUT": f"{seconds:g}"})


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the block runs (MLflow reads it at each request)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the report -------------------------------------------------------------------------------------
def report(outcomes: list[Outcome], setup: Trials) -> None:
    """Two tables: the driver against bare Tune, and the MLflow mirror of each platform run."""
    bare, trials = outcomes[0], len(setup.xs)
    title = f"{trials} noop trials (sleep {setup.seconds:g} s), {setup.concurrency} at a time, {setup.cpu:g} CPU each"
    driver = Table(title=title, title_justify="left")
    columns = ("run", "done", "wall s", "last result s", "overhead ms/trial", "× bare Tune", "driver CPU s")
    for column in (*columns, "CPU overhead ms/trial", "× bare CPU"):
        driver.add_column(column, justify="right")
    for o in outcomes:
        same = o is bare
        driver.add_row(
            o.label,
            str(o.done),
            f"{o.wall_s:.1f}",
            "—" if o.last_result_s is None else f"{o.last_result_s:.1f}",
            "—" if same else f"{(o.wall_s - bare.wall_s) / trials * 1000:+.0f}",
            "1.00" if same else f"{o.wall_s / bare.wall_s:.2f}",
            f"{o.driver_cpu_s:.1f}",
            "—" if same else f"{(o.driver_cpu_s - bare.driver_cpu_s) / trials * 1000:+.0f}",
            "1.00" if same else f"{o.driver_cpu_s / bare.driver_cpu_s:.2f}",
        )
    console.print(driver)
    mirror = Table(title="MLflow mirror (seconds from the launch's start)", title_justify="left")
    for column in ("run", "at exit", "in MLflow", "relaunches", "all in MLflow", "lag", "backlog", "results/s"):
        mirror.add_column(column, justify="right")
    mirror.add_column("server CPU s", justify="right")
    for o in outcomes[1:]:
        cpu = "—" if o.server_cpu_s is None else f"{o.server_cpu_s:.0f}"
        if o.server_cpu_s is not None and o.mirrored:
            cpu += f" ({o.server_cpu_s / o.mirrored:.2f}/result)"
        if o.last_mirrored_s is None or o.last_result_s is None:
            mirror.add_row(o.label, f"0/{trials}", f"0/{trials}", str(o.relaunches), *["—"] * 4, cpu)
            continue
        span = o.last_mirrored_s - (o.first_mirrored_s or 0)
        rate = (o.mirrored - 1) / span if span > 0 else 0.0
        all_in, estimated = o.last_mirrored_s, ""
        if o.mirrored < o.done and rate:  # not all there when the benchmark stopped: at the rate measured
            all_in, estimated = o.last_mirrored_s + (o.done - o.mirrored) / rate, "≈"
        mirror.add_row(
            o.label,
            f"{o.mirrored_at_exit}/{trials}",
            f"{o.mirrored}/{trials}",
            str(o.relaunches),
            f"{estimated}{all_in:.1f}",
            f"{estimated}{all_in - o.last_result_s:.1f}",
            str(o.backlog),
            f"{rate:.2f}" if rate else "—",
            cpu,
        )
    console.print(mirror)
    console.print(
        "[dim]overhead = (wall − bare Tune's wall) / trials; wall includes the launcher's wait for the mirror at "
        "exit; driver CPU = this process's CPU time (Tune's loop, the launcher, the MLflow mirror thread). "
        "at exit = results in MLflow when the first launch returned; lag = all in MLflow − last result (≈: "
        "estimated at the rate measured, when not all were in MLflow by the end); backlog = results not yet in "
        "MLflow when the last trial finished; results/s = runs mirrored between the first and the last one's "
        "end time.[/]"
    )
    for o in outcomes:
        for note in dict.fromkeys(o.notes):
            console.print(f"[yellow]{o.label}:[/] {escape(note)}", soft_wrap=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once (max_concurrent), all three runs")
    parser.add_argument("--seconds", type=float, default=0.0, help="how long each trial sleeps")
    parser.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL-backed server")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=60,
        help="seconds an MLflow request may take in the server run (MLFLOW_HTTP_REQUEST_TIMEOUT; the launcher's "
        "default is 10, which a basic-auth server on a busy machine exceeds); a value set in the environment wins",
    )
    parser.add_argument(
        "--drain-minutes", type=float, default=30, help="relaunch for at most this long until MLflow has every result"
    )
    args = parser.parse_args()

    import ray

    connect_ray(None)  # one Ray for all runs, started before any clock runs
    cpu = min(1.0, ray.cluster_resources().get("CPU", 1.0) / args.concurrency)
    xs = list(range(args.trials))
    skip = "--sqlite-only" if args.sqlite_only else missing()
    if skip:
        console.print(f"[yellow]{skip}: the PostgreSQL-backed server run is skipped; SQLite only[/]")
    load = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="scale-"))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    trials = Trials(xs, args.seconds, cpu, args.concurrency)
    drain_s = args.drain_minutes * 60
    try:
        with Progress(*columns, console=console) as progress:
            # warm-up: Tune's and the platform's first trials start workers and import modules
            warm = Trials(xs[: 2 * args.concurrency], args.seconds, cpu, args.concurrency)
            bare_tune("warm-up (bare Tune)", warm, root / "warm", progress)
            platform("warm-up (platform)", warm, root / "warm-sqlite", progress)
            outcomes = [bare_tune("bare Tune", trials, root, progress)]
            outcomes.append(platform("SQLite", trials, root / "sqlite", progress, drain_s=drain_s))
            if not skip:
                with TeamServer() as server, request_timeout(args.request_timeout):
                    try:
                        outcomes.append(platform("PostgreSQL", trials, root / "pg", progress, server, drain_s))
                    except SpecError as exc:  # the launcher refused: the server did not answer it in time
                        console.print(f"[red]PostgreSQL run refused:[/] {escape(exc.render())}")
        report(outcomes, trials)
        console.print(
            f"[dim]load average (1 min) at start {load:.1f}, at end {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs[/]"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
