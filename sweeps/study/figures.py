"""Static figures for papers: 300-DPI PNG and PDF, drawn with matplotlib (no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, never need a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sweeps.study import completeness  # noqa: E402
from sweeps.study.heatmaps import HeatmapAxes, panels  # noqa: E402
from sweeps.study.records import STATES, UNHEALTHY, shown  # noqa: E402

DPI = 300
FORMATS = ("png", "pdf")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")[:80] or "all"


def save(figure: plt.Figure, folder: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = folder / f"{stem}.{fmt}"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths


def front_figures(table: pd.DataFrame, by: list[str], main: str, folder: Path) -> list[Path]:
    """Per (model, task): one panel per cost, configurations by technique, the front joined by a line."""
    if table.empty:
        return []
    paths = []
    for label, group in table.groupby(by, sort=True, dropna=False) if by else [((), table)]:
        costs = list(dict.fromkeys(group["cost"]))
        figure, axes = plt.subplots(1, len(costs), figsize=(4.2 * len(costs), 3.6), squeeze=False)
        for ax, cost in zip(axes[0], costs, strict=True):
            part = group[group["cost"] == cost]
            for technique, points in part.groupby("technique", sort=True) if "technique" in part else [("", part)]:
                err = points.get(f"{main}_std")
                ax.errorbar(points["cost_value"], points[main], yerr=err, fmt="o", ms=5, capsize=2, label=technique)
            sick = part[part["health"].notna()]
            if not sick.empty:
                ax.scatter(sick["cost_value"], sick[main], marker="x", s=60, color="red", label=UNHEALTHY, zorder=4)
            front = part[part["on_front"]].sort_values("cost_value")
            ax.plot(front["cost_value"], front[main], "k-", lw=1, drawstyle="steps-post", label="front", zorder=3)
            reference = part["baseline"].iloc[0]
            if pd.notna(reference):
                ax.axhline(reference, ls="--", color="grey", lw=1, label="baseline")
            ax.set_xlabel(cost)
            ax.set_ylabel(main)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="best")
        values = label if isinstance(label, tuple) else (label,)
        figure.suptitle(" · ".join(str(v) for v in values) or main, fontsize=10)
        paths += save(figure, folder, "front-" + slug("-".join(str(v) for v in values)))
    return paths


def heatmap_figure(table: pd.DataFrame, axes: HeatmapAxes, main: str, folder: Path) -> list[Path]:
    """One annotated panel per facet value, all in one figure."""
    found = panels(table, axes, main)
    if not found:
        return []
    columns = min(3, len(found))
    rows = -(-len(found) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    for ax in grid.flat[len(found) :]:
        ax.axis("off")
    for ax, (title, _, pivot) in zip(grid.flat, found, strict=False):
        image = ax.imshow(pivot.values, aspect="auto", cmap="viridis", origin="lower")
        ax.set_xticks(range(len(pivot.columns)), [shown(c) for c in pivot.columns])
        ax.set_yticks(range(len(pivot.index)), [shown(i) for i in pivot.index])
        for (i, j), value in pd.DataFrame(pivot.values).stack().items():
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", color="white", fontsize=7)
        ax.set_xlabel(axes.x)
        ax.set_ylabel(axes.y)
        ax.set_title(title, fontsize=8)
        figure.colorbar(image, ax=ax, label=main)
    return save(figure, folder, f"heatmap-{slug(axes.x)}-{slug(axes.y)}")


def completeness_figure(table: pd.DataFrame, axes: list[str], folder: Path) -> list[Path]:
    """Rows: all axes but the last; columns: the last; each cell's text and its share done."""
    if table.empty or not axes:
        return []
    table = table.assign(**{axes[-1]: table[axes[-1]].map(shown)})
    keyed = table.assign(
        row=table[axes[:-1]].map(shown).agg(" · ".join, axis=1) if len(axes) > 1 else "",
        text=table.apply(completeness.label, axis=1),
        share=table["done"] / table["planned"].where(table["planned"] > 0),
    )
    text = keyed.pivot(index="row", columns=axes[-1], values="text")
    share = keyed.pivot(index="row", columns=axes[-1], values="share").astype(float)
    figure, ax = plt.subplots(figsize=(2.2 * len(text.columns) + 2, 0.45 * len(text.index) + 1.2))
    ax.imshow(share.fillna(-0.2).values, cmap="RdYlGn", vmin=-0.2, vmax=1, aspect="auto")
    for i, row in enumerate(text.index):
        for j, column in enumerate(text.columns):
            ax.text(j, i, text.loc[row, column], ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(text.columns)), [shown(c) for c in text.columns], fontsize=7)
    ax.set_yticks(range(len(text.index)), list(text.index), fontsize=7)
    ax.set_xlabel(axes[-1])
    ax.set_title(f"completeness ({', '.join(STATES)})", fontsize=8)
    return save(figure, folder, "completeness")


def curve_figure(table: pd.DataFrame, folder: Path) -> list[Path]:
    """One panel per metric, a line per trial; a trial ASHA stopped ends in a cross."""
    if table.empty:
        return []
    metrics = list(dict.fromkeys(table["metric"]))
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (name, state), points in table[table["metric"] == metric].groupby(["name", "state"], sort=True):
            (line,) = ax.plot(points["step"], points["value"], lw=1, label=name)
            if state == "stopped":
                ax.plot(points["step"].iloc[-1], points["value"].iloc[-1], "x", ms=8, color=line.get_color())
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="best")
    figure.suptitle("training curves (× = stopped by the scheduler)", fontsize=9)
    return save(figure, folder, "curves")
