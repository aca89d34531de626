"""The ``sweeps`` command line: plan, launch, resume, status, export, report, ui, list."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sweeps import spec as spec_module
from sweeps.errors import FieldError, SpecError, bad_choice, describe
from sweeps.fielddocs import Parameter, parameters, summary
from sweeps.groups import describe as describe_groups
from sweeps.plan import Plan
from sweeps.store import SweepStore
from sweeps.sweep_file import plan_file
from sweeps.tables import counts_line, metric_names, notes, plan_table, state_table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
console = Console()
err_console = Console(stderr=True)

STORAGE_HELP = "Storage folder that holds the sweep (as in the sweep file's `storage`)."
# help texts are rich markup: a literal [ is written \[
SET_HELP = "Override any key of the sweep file, e.g. --set fixed.samples=4 or --set grid.task=\\[passkey]."
DEFAULT_STORAGE = os.environ.get("SWEEPS_STORAGE", "./runs")
ADDRESS_HELP = (
    "Ray cluster to join: host:port, or auto for the one `ray start` runs on this machine "
    "(default: RAY_ADDRESS; without either, a local Ray of the launcher's own on 127.0.0.1)."
)


def _locate(ref: str, storage: str) -> tuple[SweepStore, Path]:
    """A sweep by name (under ``storage``) or by its sweep file; returns its store and storage root."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        spec, _ = spec_module.load(path)
        return SweepStore(spec.sweep_dir), spec.storage_path
    root = Path(storage).expanduser().resolve()
    store = SweepStore(root / ref)
    if not store.spec_path().is_file():
        known = sorted(p.parent.name for p in root.glob(f"*/{store.spec_path().name}")) if root.is_dir() else []
        if known:
            raise SpecError([bad_choice("sweep", ref, known)], str(root))
        raise SpecError(
            [
                FieldError(
                    "sweep",
                    f"no sweep named {describe(ref)} under {root}",
                    ref,
                    hint="pass --storage, or the sweep file itself",
                )
            ]
        )
    return store, root


@app.command()
def plan(file: Path, set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Print the trials of a sweep file (key and varying parameters) without running anything."""
    started = time.perf_counter()
    sweep, _ = plan_file(file, set_, needs_secrets=False)
    spec = sweep.spec
    store = SweepStore(spec.sweep_dir)
    pending = [t for t in sweep.trials if not store.is_done(t.key)]
    groups = local_groups(sweep, pending)
    # read, validated, keyed and grouped: what a launch does before its first trial (imports and the table aside)
    planned = time.perf_counter() - started
    numbers = {key: i for i, g in enumerate(groups, 1) for key in g.keys} if len(groups) < len(pending) else None
    console.print(plan_table(f"{spec.name} · {spec.workload}", sweep.records(), numbers))
    extra = f", {sweep.duplicates} duplicate cell(s) collapsed" if sweep.duplicates else ""
    done = len(sweep.trials) - len(pending)
    stored = f"; {done} already completed in {store.root}" if done else ""
    console.print(f"[bold]{len(sweep.trials)} trial(s)[/]{extra}{stored}; planned in {planned:.2f} s")
    if numbers:
        console.print(
            f"Trial groups on this machine: {describe_groups(groups)} "
            "(a launch packs them again for the cluster it runs on; share_prefill: false turns them off)"
        )


def local_groups(sweep: Plan, pending: list) -> list:
    """How ``pending`` would be grouped by a launch on this machine (its CPUs and GPUs, the file's max_concurrent)."""
    from sweeps.groups import concurrent_slots, plan_groups
    from sweeps.raycluster import local_cpus, local_gpus

    spec = sweep.spec
    gpus = local_gpus() if spec.resources.gpu > 0 else 0
    slots = concurrent_slots(spec.max_concurrent, local_cpus(), gpus, spec.resources.cpu, spec.resources.gpu)
    return plan_groups(sweep, pending, slots)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def _launch(sweep: Plan, raw: dict, address: str | None, verbose: bool) -> None:
    from sweeps.runner import launch as run_launch

    spec = sweep.spec
    where = escape(str(spec.sweep_dir))
    console.print(f"[bold]{spec.name}[/] · {len(sweep.trials)} trial(s) of [bold]{spec.workload}[/] → {where}")
    from sweeps.storage_full import SweepStoppedFull

    try:
        summary = run_launch(sweep, raw, address=address, console=console, verbose=verbose)
    except SweepStoppedFull as exc:  # one message: what is full, what is kept, how to go on
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        raise typer.Exit(1) from None
    store = SweepStore(spec.sweep_dir)
    states = {t.key: store.state(t.key, False) for t in sweep.trials}
    metrics = metric_names(states.values(), sweep.workload.key_metrics)
    console.print(state_table(f"{spec.name} results", sweep.records(), states, metrics))
    for line in notes(sweep.records(), states):
        console.print(line, highlight=False)
    console.print(
        f"{counts_line(summary.counts)}  (ran {summary.ran}, skipped {summary.skipped} already completed) "
        f"in {_duration(summary.seconds)}"
    )
    launch_notes = getattr(sweep.workload, "launch_notes", None)
    if launch_notes and summary.ran_keys:
        for line in launch_notes([r for k in summary.ran_keys if (r := store.result(k))]):
            console.print(line, highlight=False)
    if summary.failed:
        console.print(
            f"[red]{summary.failed} trial(s) failed[/]; "
            f"details: sweeps status {spec.name} --storage {escape(spec.storage)}"
        )
    if spec.tracking:
        console.print(f"MLflow: {escape(summary.runs_url)}", soft_wrap=True)
    else:
        console.print(
            f"MLflow UI: [bold]sweeps ui {spec.name} --storage {escape(spec.storage)}[/], "
            f"then open {escape(summary.runs_url)}",
            soft_wrap=True,
        )
    if summary.counts.get("pending"):
        console.print(f"Unfinished trials remain: [bold]sweeps resume {spec.name} --storage {escape(spec.storage)}[/]")
    if summary.failed or summary.counts.get("pending"):
        raise typer.Exit(1)


@app.command()
def launch(
    file: Path,
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    address: str = typer.Option(None, help=ADDRESS_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the workers' own logs."),
) -> None:
    """Run every trial of a sweep file that has not completed yet, tracked in MLflow."""
    sweep, raw = plan_file(file, set_)
    _launch(sweep, raw, address, verbose)


@app.command()
def resume(
    name: str,
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
    address: str = typer.Option(None, help=ADDRESS_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the workers' own logs."),
) -> None:
    """Continue an interrupted sweep from storage: only trials that have not completed run."""
    store, _ = _locate(name, storage)
    sweep, raw = plan_file(store.spec_path(), [])
    _launch(sweep, raw, address, verbose)


@app.command()
def status(name: str, storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP)) -> None:
    """Show every trial of a sweep: done / running / failed / pending, key metrics, failure reasons."""
    store, _ = _locate(name, storage)
    from sweeps import registry

    rows = store.plan()
    alive = store.launcher_alive()
    states = {r["key"]: store.state(r["key"], alive) for r in rows}
    workload = registry.get(spec_module.load(store.spec_path())[0].workload)
    metrics = metric_names(states.values(), workload.key_metrics)
    console.print(state_table(f"{store.root.name}", rows, states, metrics))
    for line in notes(rows, states):
        console.print(line, highlight=False)
    from collections import Counter

    console.print(counts_line(Counter(s.status for s in states.values())))


@app.command()
def export(
    name: str,
    format: str = typer.Option("csv", "--format", "-f", help="csv or parquet."),
    output: Path = typer.Option(None, "--output", "-o", help="Output file (default: <sweep>.<format>)."),
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
) -> None:
    """Write one row per trial (key, status, every parameter, every metric) to CSV or Parquet."""
    from sweeps.export import FORMATS, OutputError
    from sweeps.export import export as write

    if format not in FORMATS:
        raise SpecError([bad_choice("--format", format, FORMATS)])
    store, _ = _locate(name, storage)
    output = output or Path(f"{store.root.name}.{format}")
    try:
        count = write(store, format, output)
    except OutputError as exc:
        raise SpecError([FieldError("--output", str(exc), str(output))]) from None
    console.print(f"Wrote {count} row(s) to {escape(str(output))}", highlight=False)


@app.command()
def report(
    name: str,
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default: <storage>/<sweep>/report)."),
    x: str = typer.Option(None, "--x", help="Grid axis across the heatmaps (default: window_size)."),
    y: str = typer.Option(None, "--y", help="Grid axis up the heatmaps (default: cache_size)."),
    facet: str = typer.Option(None, "--facet", help="Grid axis with one heatmap per value (default: technique etc.)."),
    include_unhealthy: bool = typer.Option(False, "--include-unhealthy", help="Draw unhealthy trials on the fronts."),
) -> None:
    """Write the sweep's report: an offline HTML page, 300-DPI PNG/PDF figures and CSV tables."""
    from sweeps.study import Study
    from sweeps.summary_run import publish

    store, root = _locate(name, storage)
    files = Study(store).report(output, x, y, facet, include_unhealthy)
    console.print(f"Report: [bold]{files.page}[/]  ({len(files.figures)} figure file(s), {len(files.tables)} table(s))")
    run = publish(store, root, files.folder, console)
    if run:
        console.print(f"MLflow: the sweep's run carries it with the best trials and the front: {escape(run)}")


@app.command()
def ui(
    name: str,
    storage: str = typer.Option(DEFAULT_STORAGE, help=STORAGE_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
) -> None:
    """Serve the MLflow UI on the sweep's embedded store and point at its runs table."""
    from sweeps.summary_run import save_view
    from sweeps.tracking import Tracker
    from sweeps.ui import serve

    store, root = _locate(name, storage)
    spec, _ = spec_module.load(store.spec_path())
    tracker = Tracker(spec.tracking, root, spec.experiment_name, spec.name)
    if tracker.find_view() is None:
        save_view(store, tracker, console)  # a sweep launched before views were saved
    tracker.find_parent()
    base = None if spec.tracking else f"http://{host}:{port}"
    runs, parent = tracker.runs_url(base), tracker.parent_url(base)
    if parent:
        console.print(f"The sweep's run (how to read it, best trials, report): {escape(parent)}", soft_wrap=True)
    if spec.tracking:
        console.print(f"This sweep tracks to a server: open {escape(runs)}", soft_wrap=True)
        return
    console.print(f"MLflow UI on {escape(str(root))}: open [bold]{escape(runs)}[/]  (Ctrl-C stops)", soft_wrap=True)
    raise typer.Exit(serve(root, host, port))


@app.command("list")
def list_(
    what: str = typer.Argument("workloads", help="workloads, or a part a workload offers: techniques, tasks, rewards"),
) -> None:
    """Show what is registered: workloads and the parts they offer, each parameter with type, default and meaning."""
    from sweeps.registry import WORKLOADS

    workloads = dict(WORKLOADS.items())
    if what == "workloads":
        for name, workload in workloads.items():
            offers = ", ".join(f"sweeps list {section}" for section in workload.catalog())
            params = [p for schema in workload.schemas({}) for p in parameters(schema)]
            _print_part(name, workload.description + (f" (see also: {offers})" if offers else ""), params)
        return
    sections = {s: parts for w in workloads.values() for s, parts in w.catalog().items()}
    if what not in sections:
        raise SpecError([bad_choice("list", what, ["workloads", *sorted(sections)])])
    for name, part in sorted(sections[what].items()):
        _print_part(name, summary(part), parameters(part))


def _print_part(name: str, about: str, params: list[Parameter]) -> None:
    """One registered part: its name and what it is, then a row per parameter (type, default, help)."""
    console.print(Text.assemble((name, "bold cyan"), "  ", about), soft_wrap=False)
    if not params:
        console.print(Text("  no parameters of its own", style="dim"))
        console.print()
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), pad_edge=True)
    table.add_column("parameter", style="bold", no_wrap=True)
    table.add_column("type", style="green", max_width=24)
    table.add_column("default", max_width=20)
    table.add_column("help", ratio=1)
    for p in params:
        table.add_row(Text(p.name), Text(p.type), Text(p.default), Text(p.help))
    console.print(table)
    console.print()


def _print_error(text: str) -> None:
    """An error on stderr, the user's text in it shown literally (``[red]`` in a value is not markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", text), soft_wrap=True)


def _usage_error(exc: typer.TyperException) -> None:
    """A command-line mistake (unknown command or option, missing value) as a short message and the usage."""
    ctx = getattr(exc, "ctx", None)
    if exc.__class__.__name__ == "NoArgsIsHelpError" and ctx is not None:
        err_console.print(Text(ctx.get_help()), soft_wrap=True)
        return
    _print_error(exc.format_message())
    if ctx is not None:
        err_console.print(Text(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help."), soft_wrap=True)
    else:
        err_console.print(Text("Try 'sweeps --help' for help."), soft_wrap=True)


def main() -> None:
    """Entry point: bad input (the sweep file, --set or the command line) exits with code 2 and a
    list of problems, before any work starts."""
    try:
        code = app(standalone_mode=False)
    except SpecError as exc:
        _print_error(exc.render())
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.TyperException as exc:  # typer's own click exceptions: usage errors
        _usage_error(exc)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
