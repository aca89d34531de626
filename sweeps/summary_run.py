"""The sweep's parent MLflow run as the sweep's answer, refreshed from storage.

The parent run says how many trials ended how, the best trial per (model, task) by the
workload's main metric, the configurations on the main metric's Pareto front against
memory, the cells of the grid that are missing, and how to read the sweep in MLflow (its
description). It carries ``sweeps report``'s page, figures and tables as artifacts, and the
experiment carries the sweep's saved runs-table view (:mod:`sweeps.mlflow_view`).

Everything is computed by :mod:`sweeps.study` from storage; this module gathers it into one
contract (:class:`SweepSummary`) and writes it, :mod:`sweeps.summary_note` words it. A launch
refreshes it at its end, ``sweeps report`` after writing the report. MLflow is a mirror: a
summary that cannot be written is reported, never a failed launch.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps import storage_full
from sweeps.mlflow_view import RunsView, experiment_tags
from sweeps.store import DONE, FAILED, PENDING, PLAN, RESULT, RUNNING, STOPPED, SweepStore

if TYPE_CHECKING:
    from rich.console import Console

    from sweeps.study.records import Records
    from sweeps.tracking import Tracker

NOTE_TAG = "mlflow.note.content"
SUMMARY = "summary.json"
#: metrics every evaluate run carries as an axis of memory (tokens kept, and the budget)
MEMORY_AXES = ("kv_cache_tokens", "kv_budget_tokens")
REPORT_ARTIFACTS = ("html", "png", "csv")
#: free space the summary leaves on the sweep's storage at least (what a launch needs to start), and
#: what drawing a report takes (its page alone, with plotly inlined, is about 5 MB)
ROOM = storage_full.MIN_FREE_EMBEDDED
REPORT_ROOM = 16 * 2**20
#: a trial's status in storage, as the launch and `sweeps status` count them
STATUSES = (DONE, STOPPED, FAILED, RUNNING, PENDING)


@dataclass(frozen=True)
class SweepSummary:
    """What the parent run says: the one contract between the study (storage) and MLflow."""

    sweep: str
    workload: str
    main: str
    lower_is_better: bool
    #: trials per status (done, stopped, failed, running, pending), ``total``, and ``unhealthy``: the
    #: done trials whose outputs are mostly broken (counted in ``done`` too, as the launch counts them)
    counts: dict[str, int]
    #: per (model, task): the best configuration's group values, ``trial``, ``keys`` and metrics
    best: list[dict[str, Any]]
    #: the cost the front trades the main metric against (None: no front)
    front_cost: str | None
    #: configurations on that front: group values, ``trial``, ``keys``, main metric and cost
    front: list[dict[str, Any]]
    #: the completeness matrix's axes, and its cells that are not complete (``state`` says why)
    missing_axes: list[str]
    missing: list[dict[str, Any]]
    view: RunsView
    #: the report folder whose page, PNGs and CSVs become the parent's artifacts
    report: Path | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["report"] = str(self.report) if self.report else None
        return _plain(data)


def summarize(records: Records, sweep: str, report: Path | None = None) -> SweepSummary:
    """The answers, from a sweep's records (main metric and directions set: ``Study.records()``)."""
    from sweeps.study import completeness, fronts
    from sweeps.study.best import best_per_group
    from sweeps.study.records import UNHEALTHY

    main, frame = records.main, records.frame
    statuses = frame["status"].value_counts() if not frame.empty else {}
    unhealthy = int((frame["state"] == UNHEALTHY).sum()) if not frame.empty else 0
    counts = {"total": len(frame), **{s: int(statuses.get(s, 0)) for s in STATUSES}, UNHEALTHY: unhealthy}
    by = fronts.groups(records)
    best = [
        {**{g: row[g] for g in by}, "trial": row["names"], "keys": row["keys"], "n": row["n"], **_metrics(row, records)}
        for _, row in best_per_group(records).iterrows()
    ]
    table = fronts.fronts(records)
    front_cost = next((c for c in fronts.COSTS if not table.empty and (table["cost"] == c).any()), None)
    front = []
    if front_cost:
        rows = table[(table["cost"] == front_cost) & table["on_front"]].sort_values([*by, front_cost])
        front = [
            {**{g: r[g] for g in by}, "trial": r["names"], "keys": r["keys"], main: r[main], front_cost: r[front_cost]}
            for _, r in rows.iterrows()
        ]
    axes = completeness.default_axes(records)
    matrix = completeness.matrix(records, axes)
    missing = [
        {**{a: row[a] for a in axes}, "state": completeness.label(row)}
        for _, row in matrix.iterrows()
        if not row["complete"]
    ]
    return SweepSummary(
        sweep=sweep,
        workload=records.workload,
        main=main,
        lower_is_better=records.lower_is_better(main),
        counts=counts,
        best=best,
        front_cost=front_cost,
        front=front,
        missing_axes=axes,
        missing=missing,
        view=runs_view(records, sweep),
        report=report,
    )


def runs_view(records: Records, sweep: str) -> RunsView:
    """The sweep's runs table: its varying parameters, key metrics and memory axes; main metric against memory."""
    from sweeps import registry
    from sweeps.study.fronts import COSTS

    key_metrics = list(registry.get(records.workload).key_metrics) if records.workload else []
    present = set(records.metrics)
    metrics = list(dict.fromkeys([records.main, *key_metrics, *(m for m in MEMORY_AXES if m in present)]))
    costs = [c for c in COSTS if c in present][:2]
    return RunsView(
        sweep=sweep,
        params=list(records.axes),
        metrics=[m for m in metrics if m in present or m in key_metrics],
        main=records.main,
        lower_is_better=records.lower_is_better(records.main),
        tradeoffs=[(cost, records.main) for cost in costs if records.main in present],
    )


def _metrics(row: Any, records: Records) -> dict[str, Any]:
    """The best configuration's main metric and the memory it kept, where the sweep has them."""
    names = [records.main, "kv_cache_mb", *MEMORY_AXES]
    return {m: row[m] for m in names if m in row.index and not _missing(row[m])}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return None if _missing(value) else value


def write(tracker: Tracker, summary: SweepSummary) -> None:
    """Refresh the parent run (description, counts, artifacts) and the experiment's view of the sweep."""
    from sweeps.summary_note import description

    parent = tracker.ensure_parent(summary.workload)
    tracker.set_experiment_tags(experiment_tags(summary.view))
    tracker.find_view()
    client = tracker.client
    client.set_tag(parent, NOTE_TAG, description(summary))
    stamp = int(time.time() * 1000)
    tracker.log_points(parent, [(f"trials_{state}", float(n), stamp, 0) for state, n in summary.counts.items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / SUMMARY
        path.write_text(json.dumps(summary.to_json(), indent=2) + "\n")
        client.log_artifact(parent, str(path))
    files = report_artifacts(summary.report)
    size = sum(f.stat().st_size for f in files)
    if tracker.embedded and storage_full.free_bytes(tracker.storage) < size + ROOM:
        # a copy in the embedded store must not fill the storage the sweep's results live on
        raise RuntimeError(f"the report ({size / 2**20:.0f} MB) is not copied: {tracker.storage} is nearly full")
    for file in files:
        client.log_artifact(parent, str(file), artifact_path="report")


def report_artifacts(folder: Path | None) -> list[Path]:
    """The report's page, PNG figures and CSV tables (PDFs stay in storage, for papers)."""
    if folder is None or not folder.is_dir():
        return []
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lstrip(".") in REPORT_ARTIFACTS]


def prepare(store: SweepStore, report: Path | None = None) -> SweepSummary:
    """The summary of the sweep in ``store`` with its report: ``report`` as it is (what ``sweeps report``
    just wrote), else the default report folder, drawn again when the plan or a result changed since
    (none, when the storage has too little room left for it)."""
    from sweeps.study import Study
    from sweeps.study.study import REPORT_DIR

    study = Study(store)
    default = store.root / REPORT_DIR
    sources = _fingerprint(store)
    if report is None:
        report = default
        if _read(default / SOURCES) != sources:
            if storage_full.free_bytes(store.root) < REPORT_ROOM + ROOM:
                report = None  # the results come first: the report waits for space
            else:
                study.report(default)
                report_sources(default, sources)
    elif report.resolve() == default.resolve():
        report_sources(default, sources)
    return summarize(study.records(), store.root.name, report)


#: in a report folder: what the report was drawn from, so a launch that changed nothing does not redraw it
SOURCES = ".sources"


def report_sources(folder: Path, sources: str) -> None:
    (folder / SOURCES).write_text(sources)


def _fingerprint(store: SweepStore) -> str:
    """The plan and every result's size and time: what the report shows, short of reading it all."""
    digest = hashlib.sha256((store.root / PLAN).read_bytes() if (store.root / PLAN).is_file() else b"")
    for path in sorted(store.root.glob(f"*/{RESULT}")):
        stat = path.stat()
        digest.update(f"{path.parent.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def refresh_after_launch(store: SweepStore, console: Console) -> SweepSummary | None:
    """The summary for the end of a launch, or None (said once) when storage cannot give one."""
    try:
        summary = prepare(store)
    except (Exception, KeyboardInterrupt) as exc:  # the launch's results stand whatever the report does
        console.print(f"[yellow]The sweep's summary for MLflow could not be built: {_short(exc)}[/]")
        return None
    if summary.report is None:
        free = storage_full.free_bytes(store.root) / 2**20
        console.print(f"[yellow]The sweep's report was not drawn: {free:.0f} MB free in {store.root} is too little[/]")
    return summary


def publish(store: SweepStore, storage: Path, report: Path | None, console: Console) -> str | None:
    """Refresh the parent run after ``sweeps report``; returns the parent run's URL, or None (said once).

    ``storage``: the folder that holds the sweep (and, without a tracking server, its MLflow store).
    """
    from sweeps import spec as spec_module
    from sweeps.tracking import connect

    try:
        spec, _ = spec_module.load(store.spec_path())
        summary = prepare(store, report)
        tracker = connect(spec.tracking, storage, spec.experiment_name, spec.name)
        write(tracker, summary)
    except Exception as exc:  # the report is written either way
        console.print(f"[yellow]MLflow: the sweep's run could not be refreshed: {_short(exc)}[/]")
        return None
    return tracker.parent_url()


def save_view(store: SweepStore, tracker: Tracker, console: Console) -> None:
    """Save the sweep's runs-table view on its experiment (no report, no parent run); said once if it cannot."""
    from sweeps.study import Study

    try:
        tracker.set_experiment_tags(experiment_tags(runs_view(Study(store).records(), store.root.name)))
        tracker.find_view()
    except Exception as exc:
        console.print(f"[yellow]MLflow: the sweep's view of its runs could not be saved: {_short(exc)}[/]")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
