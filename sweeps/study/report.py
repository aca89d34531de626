"""Writes a sweep's report: the interactive page, the static figures and the tables as CSV."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sweeps.errors import FieldError, SpecError
from sweeps.store import SweepStore
from sweeps.study import budgets, completeness, figures, fronts, heatmaps, page, training
from sweeps.study.records import STATES, UNHEALTHY, Records, per_setting

PAGE = "report.html"
TRAINING_WORKLOADS = ("sft", "grpo")


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows beyond its defaults."""

    x: str | None = None
    y: str | None = None
    facet: str | None = None
    #: draw unhealthy trials on the fronts and heatmaps (they are flagged either way)
    include_unhealthy: bool = False


@dataclass
class ReportFiles:
    """Where the report went."""

    folder: Path
    page: Path
    figures: list[Path] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)


def check(records: Records, options: ReportOptions, folder: Path | None = None) -> heatmaps.HeatmapAxes | None:
    """The heatmap axes, or a SpecError naming every bad option and an unusable folder (before any work)."""
    axes, errors = heatmaps.choose_axes(records, options.x, options.y, options.facet)
    problem = folder_problem(folder) if folder is not None else None
    if problem:
        errors.append(FieldError("--output", problem, str(folder)))
    if errors:
        raise SpecError(errors)
    return axes


def folder_problem(folder: Path) -> str | None:
    """Why the report cannot be written under ``folder`` (created if missing), or None."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file; name a folder for the report"
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK):
        return f"the folder {existing} is not writable"
    return None


def write(records: Records, store: SweepStore, folder: Path, options: ReportOptions = ReportOptions()) -> ReportFiles:
    """Build every view from the records and write it under ``folder``."""
    axes = check(records, options)
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(folder, folder / PAGE)
    main, by = records.main, fronts.groups(records)
    title = f"{store.root.name} · {records.workload}"
    view = page.Page(title)

    counts = records.frame["state"].value_counts() if not records.frame.empty else pd.Series(dtype=int)
    view.raw(
        "<p>"
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATES if counts.get(s, 0))
        + f" · main metric <b>{html.escape(main)}</b> ({'lower' if records.lower_is_better(main) else 'higher'}"
        + " is better) · repeats over seeds averaged (mean, std, n)"
        + ("" if options.include_unhealthy else " · unhealthy trials left off the fronts and heatmaps")
        + "</p>"
    )
    _table(files, "trials", records.frame)
    settings = per_setting(records)
    _table(files, "configurations", settings)

    matrix_axes = completeness.default_axes(records)
    matrix = completeness.matrix(records, matrix_axes)
    _table(files, "completeness", matrix)
    view.heading("Completeness", f"{' × '.join(matrix_axes)}: trials per cell by state (— is a cell no trial covers)")
    view.raw(page.completeness_table(matrix, matrix_axes))
    files.figures += figures.completeness_figure(matrix, matrix_axes, folder)

    sick = records.frame[records.frame["state"] == UNHEALTHY]
    if not sick.empty:
        view.heading("Unhealthy trials", "mostly empty, unformatted or unfinished outputs (health.* tags)")
        view.raw(page.table_html(sick[["key", "name", "health"]], "unhealthy"))

    front_table = fronts.fronts(records, options.include_unhealthy)
    if not front_table.empty:
        _table(files, "fronts", front_table)
        view.heading("Pareto fronts", f"{main} against memory and latency; front outlined and joined, baseline dashed")
        for label, group in front_table.groupby(by, sort=True, dropna=False) if by else [((), front_table)]:
            values = label if isinstance(label, tuple) else (label,)
            name = " · ".join(str(v) for v in values) or "all"
            view.raw(f"<h3>{html.escape(name)}</h3>")
            view.figure(
                page.front_figure(group, records),
                "front-" + figures.slug(name),
                points=len(group),
                front=int(group["on_front"].sum()),
            )
        files.figures += figures.front_figures(front_table, by, main, folder)

    if axes is not None:
        cells = heatmaps.heatmap_cells(records, axes, options.include_unhealthy)
        if not cells.empty:
            _table(files, "heatmap", cells)
            view.heading("Heatmaps", f"{main} over {axes.x} × {axes.y}, per {', '.join(axes.facets) or 'sweep'}")
            for i, (figure, filled) in enumerate(page.heatmap_figures(cells, axes, main)):
                view.figure(figure, f"heatmap-{i}", cells=filled)
            files.figures += figures.heatmap_figure(cells, axes, main, folder)

    best = budgets.best_per_budget(records, options.include_unhealthy)
    if not best.empty:
        _table(files, "budgets", best)
        view.heading("Best per memory budget", f"per technique, relative to the baseline's {main}")
        view.raw(page.table_html(best, "budgets"))

    if records.workload in TRAINING_WORKLOADS:
        curves = training.curves(store, records.frame)
        _table(files, "curves", curves)
        if not curves.empty:
            view.heading("Training curves", "per trial; × marks a trial the scheduler (ASHA) stopped")
            view.figure(page.curve_figure(curves), "curves", lines=curves["key"].nunique())
            files.figures += figures.curve_figure(curves, folder)
        shown = [c for c in [*records.axes, "state", "n", *records.metrics] if c in settings.columns and c != "seed"]
        view.heading("Final metrics per setting", "seeds averaged per state: stopped runs apart")
        view.raw(page.table_html(settings[shown], "final"))

    files.page.write_text(view.render(), encoding="utf-8")
    return files


def _table(files: ReportFiles, name: str, frame: pd.DataFrame) -> None:
    path = files.folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    files.tables[name] = path
