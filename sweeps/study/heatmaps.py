"""Heatmaps: the main metric over two grid axes, one panel per value of the facet axes.

By default window_size × cache_size per (model, task, technique, pooling) — as many of those
as vary; any two grid axes on request. A cell averages its trials (seeds and whatever else
the axes do not name) and keeps their count and spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sweeps.errors import FieldError, bad_choice
from sweeps.study.records import Records, finished, shown

DEFAULT_X, DEFAULT_Y = "window_size", "cache_size"
DEFAULT_FACETS = ("model", "task", "technique", "pooling")


@dataclass(frozen=True)
class HeatmapAxes:
    """Which axes a heatmap spans and which split it into panels."""

    x: str
    y: str
    facets: tuple[str, ...]


def choose_axes(
    records: Records, x: str | None = None, y: str | None = None, facet: str | None = None
) -> tuple[HeatmapAxes | None, list[FieldError]]:
    """The heatmap's axes: the defaults where the sweep has them, or the ones asked for (checked)."""
    errors = []
    for option, value in (("--x", x), ("--y", y), ("--facet", facet)):
        if value is not None and value not in records.params:
            errors.append(bad_choice(option, value, records.axes or records.params))
    if errors:
        return None, errors
    x, y = x or DEFAULT_X, y or DEFAULT_Y
    if x not in records.params or y not in records.params:
        return None, []  # nothing to draw by default (no window or cache sizes in this sweep)
    facets = (facet,) if facet else tuple(f for f in DEFAULT_FACETS if f not in (x, y) and records.varies(f))
    return HeatmapAxes(x, y, facets), []


def heatmap_cells(records: Records, axes: HeatmapAxes, include_unhealthy: bool = False) -> pd.DataFrame:
    """Long form: facet values, x, y, the main metric's mean over the cell's trials (seeds included),
    its std and the trial count."""
    main = records.main
    columns = [*axes.facets, axes.x, axes.y]
    members = finished(records, include_unhealthy)
    if members.empty or main not in members.columns:
        return pd.DataFrame(columns=[*columns, main, "std", "n", "keys"])
    members = members[members[axes.x].notna() & members[axes.y].notna() & members[main].notna()]
    if members.empty:
        return pd.DataFrame(columns=[*columns, main, "std", "n", "keys"])
    cells = members.groupby(columns, dropna=False, sort=True)
    table = cells[main].agg(["mean", "std", "count"]).reset_index()
    table = table.rename(columns={"mean": main, "count": "n"})
    table["keys"] = list(cells["key"].agg(" ".join))
    return table


def panels(table: pd.DataFrame, axes: HeatmapAxes, main: str) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Per facet value: its title, its cells (long form) and their pivot (y rows × x columns)."""
    if table.empty:
        return []
    out = []
    grouped = table.groupby(list(axes.facets), dropna=False, sort=True) if axes.facets else [((), table)]
    for label, part in grouped:
        values = label if isinstance(label, tuple) else (label,)
        title = " · ".join(f"{f}={shown(v)}" for f, v in zip(axes.facets, values, strict=True)) or "all trials"
        out.append((title, part, part.pivot_table(index=axes.y, columns=axes.x, values=main, aggfunc="mean")))
    return out
