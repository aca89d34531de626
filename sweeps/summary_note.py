"""The sweep run's description (``mlflow.note.content``): how to read the sweep in MLflow, then its answers.

MLflow shows a description folded to its first lines, so the first line says how the trials
ended and which one is best; the tables below it are cut at a few rows (the report's CSV
tables have them all) and the whole at what MLflow keeps of a tag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sweeps.summary_run import MEMORY_AXES, STATUSES, SUMMARY, SweepSummary

#: rows of each table in the description (the CSVs in the report have all of them)
MAX_ROWS = 20
#: MLflow keeps tag values up to 8000 characters
MAX_NOTE = 7900


def description(summary: SweepSummary) -> str:
    """The parent run's description: how to read the sweep in MLflow, then its answers (markdown)."""
    main, view_name = summary.main, f"sweep {summary.sweep}"
    better = "lower" if summary.lower_is_better else "higher"
    lines = [
        _headline(summary),
        "",
        "## How to read this sweep",
        f"- The link `sweeps ui {summary.sweep}` and `sweeps launch` print opens the saved view **{view_name}** "
        f"(*Views*, top right): one row per trial, the best **{main}** ({better} is better) first, with the "
        "parameters that vary, the key metrics and `sweeps.status`. Runs without the metric (this run, failed "
        "trials) come last.",
        "- Run names start with what varies across the sweep and leave out what every trial shares; "
        "`✗ failed`, `⚠ …` (broken outputs) and `■ stopped` (ended early by the scheduler) mark the trials to look at.",
        f"- A single collapsed row means the table lost the view: pick **{view_name}** under *Views*, or sort by "
        f"`{main}` (MLflow nests trials under this run only while sorted by creation time). If the left bar offers "
        "GenAI pages (traces, judges), switch it to **Model training** (top left).",
        "- The chart view (second button above the table) shows every run"
        + (
            f": `{main}` against {' and '.join(f'`{x}`' for x, _ in summary.view.tradeoffs)}, then one bar per run "
            "for each metric of the table."
            if summary.view.tradeoffs
            else "."
        ),
        *(
            [
                "- Every evaluation run reports `kv_cache_tokens` (tokens kept per layer) and `kv_budget_tokens` "
                "(its `cache_size`; the prompt's length for a technique that keeps it all), so all runs share "
                "those axes in *Compare*, techniques without a `cache_size` included."
            ]
            if any(m in summary.view.metrics for m in MEMORY_AXES)
            else []
        ),
        "- Final metrics are logged once, at step 0; progress (samples done, a training's loss) at its own step.",
        "- Artifacts of this run: `report/report.html` (interactive fronts, heatmaps, completeness; opens "
        f"offline), `report/*.png` figures, `report/*.csv` tables, `{SUMMARY}`; the sweep file as `sweep.yaml`.",
    ]
    groups = [g for g in ("model", "task") if summary.best and g in summary.best[0]]
    if summary.best:
        lines += ["", f"## Best per {' and '.join(groups) or 'sweep'} by {main} ({better} is better)"]
        lines += _table(summary.best, [*groups, "trial", main, "kv_cache_mb", *MEMORY_AXES])
    if summary.front:
        lines += ["", f"## On the Pareto front of {main} against {summary.front_cost}"]
        lines += _table(summary.front, [*groups, "trial", main, summary.front_cost or ""])
    if summary.missing:
        lines += ["", f"## Missing cells ({' × '.join(summary.missing_axes)})"]
        lines += _table(summary.missing, [*summary.missing_axes, "state"])
    elif summary.counts.get("total"):
        lines += ["", "## Missing cells", "None: every cell of the grid has all its trials done."]
    text = "\n".join(lines) + "\n"
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 60] + "\n\n… (cut: see the report's CSV tables)\n"


def _headline(summary: SweepSummary) -> str:
    """The first line, which MLflow shows of a folded description: trial counts and, with one
    (model, task), its best trial."""
    line = f"**{summary.workload} sweep {summary.sweep}: {_counts_text(summary.counts)}.**"
    if len(summary.best) == 1:
        best = summary.best[0]
        line += f" Best by {summary.main}: {best['trial']} ({summary.main} {_cell(best.get(summary.main))})."
    return line


def _counts_text(counts: Mapping[str, int]) -> str:
    """``4 done (1 unhealthy), 1 failed — 5 in all``."""
    parts = []
    for status in STATUSES:
        if counts.get(status):
            sick = counts.get("unhealthy", 0) if status == "done" else 0
            parts.append(f"{counts[status]} {status}" + (f" ({sick} unhealthy)" if sick else ""))
    return ", ".join(parts) + f" — {counts.get('total', 0)} in all"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """A markdown table of at most MAX_ROWS rows, with those of ``columns`` the rows have."""
    keys = [c for c in dict.fromkeys(columns) if c in rows[0]]
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows[:MAX_ROWS]:
        out.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    if len(rows) > MAX_ROWS:
        out.append(f"\n… and {len(rows) - MAX_ROWS} more (see the report's CSV tables)")
    return out


def _cell(value: Any) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
