"""The interactive report: one HTML file with plotly's JavaScript inlined, so it opens offline.

Every plotted configuration hovers with its trial name(s), key(s) and configuration. The
page's sections carry ``data-*`` counts (points, cells) so a browser test can compare what
rendered with what the records hold.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from sweeps.study import completeness
from sweeps.study.heatmaps import HeatmapAxes, panels
from sweeps.study.records import UNHEALTHY, Records, shown

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}
td.hole{background:#eee;color:#999} td.complete{background:#d5f5d5} td.partial{background:#fde7c0}
td.broken{background:#f8c9c9} .warn{color:#b35c00}
"""


class Page:
    """Sections appended in order; plotly's JavaScript goes into the first figure only."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self._js_included = False

    def heading(self, text: str, note: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        if note:
            self.parts.append(f"<p>{html.escape(note)}</p>")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, figure: go.Figure, div_id: str, **counts: int) -> None:
        include = not self._js_included
        self._js_included = True
        markup = pio.to_html(figure, full_html=False, include_plotlyjs=include, div_id=div_id)
        attributes = " ".join(f'data-{k}="{v}"' for k, v in counts.items())
        self.parts.append(f'<section class="plot" id="section-{div_id}" {attributes}>{markup}</section>')

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>"
        )


def describe(row: pd.Series, params: Sequence[str]) -> str:
    """A configuration for hover text: its parameters that are set, one per line."""
    return "<br>".join(f"{p}={html.escape(shown(row[p]))}" for p in params if p in row and pd.notna(row[p]))


def _spread(row: pd.Series, main: str) -> str:
    std = row.get(f"{main}_std")
    return "—" if std is None or pd.isna(std) else f"{std:.3g}"


def front_figure(group: pd.DataFrame, records: Records) -> go.Figure:
    """Panels per cost; a marker per configuration by technique, the front as a line, baseline dashed."""
    main = records.main
    costs = list(dict.fromkeys(group["cost"]))
    figure = make_subplots(rows=1, cols=len(costs), subplot_titles=costs)
    techniques = sorted(group["technique"].dropna().unique()) if "technique" in group else []
    palette = plotly.colors.qualitative.Plotly
    for col, cost in enumerate(costs, 1):
        part = group[group["cost"] == cost]
        by = part.groupby("technique", sort=True) if "technique" in part else [("trials", part)]
        for technique, points in by:
            colour = palette[techniques.index(technique) % len(palette)] if technique in techniques else palette[0]
            hover = [
                [row["names"], row["keys"], describe(row, records.params), int(row["n"]), _spread(row, main)]
                for _, row in points.iterrows()
            ]
            figure.add_trace(
                go.Scatter(
                    x=points["cost_value"],
                    y=points[main],
                    mode="markers",
                    name=str(technique),
                    legendgroup=str(technique),
                    showlegend=col == 1,
                    marker={
                        "size": 9,
                        "color": colour,
                        "symbol": ["x" if pd.notna(h) else "circle" for h in points["health"]],
                        "line": {"width": [2 if f else 0 for f in points["on_front"]], "color": "black"},
                    },
                    customdata=hover,
                    hovertemplate=(
                        "<b>%{customdata[0]}</b><br>key %{customdata[1]}<br>%{customdata[2]}<br>"
                        f"{cost}=%{{x:.4g}}<br>{main}=%{{y:.4g}} (n=%{{customdata[3]}}, std %{{customdata[4]}})"
                        "<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
        front = part[part["on_front"]].sort_values("cost_value")
        figure.add_trace(
            go.Scatter(
                x=front["cost_value"],
                y=front[main],
                mode="lines",
                line={"shape": "hv", "color": "black", "width": 1},
                name="front",
                legendgroup="front",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        reference = part["baseline"].iloc[0]
        if pd.notna(reference):
            figure.add_hline(y=reference, line_dash="dash", line_color="grey", row=1, col=col)
        figure.update_xaxes(title_text=cost, row=1, col=col)
        figure.update_yaxes(title_text=main, row=1, col=col)
    figure.update_layout(height=420, margin={"t": 40})
    return figure


def heatmap_figure(title: str, pivot: pd.DataFrame, keys: pd.DataFrame, axes: HeatmapAxes, main: str) -> go.Figure:
    """One annotated heatmap; hover lists the cell's trial keys."""
    figure = go.Figure(
        go.Heatmap(
            z=pivot.values,
            x=[shown(c) for c in pivot.columns],
            y=[shown(i) for i in pivot.index],
            customdata=keys.reindex(index=pivot.index, columns=pivot.columns).values,
            texttemplate="%{z:.3g}",
            colorscale="Viridis",
            colorbar={"title": {"text": main}},
            hovertemplate=f"{axes.x}=%{{x}}<br>{axes.y}=%{{y}}<br>{main}=%{{z:.4g}}<br>keys %{{customdata}}"
            "<extra></extra>",
        )
    )
    figure.update_layout(title=title, xaxis_title=axes.x, yaxis_title=axes.y, height=360, margin={"t": 50})
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def heatmap_figures(table: pd.DataFrame, axes: HeatmapAxes, main: str) -> list[tuple[go.Figure, int]]:
    """Each facet's figure with its number of filled cells."""
    out = []
    for title, part, pivot in panels(table, axes, main):
        keys = part.pivot_table(index=axes.y, columns=axes.x, values="keys", aggfunc="first")
        out.append((heatmap_figure(title, pivot, keys, axes, main), int(pivot.notna().values.sum())))
    return out


def completeness_table(table: pd.DataFrame, axes: list[str]) -> str:
    """An HTML table: rows are all axes but the last, columns the last; holes and failures coloured."""
    if table.empty or not axes:
        return "<p>No trials.</p>"
    rows = table[axes[:-1]].map(shown).agg(" · ".join, axis=1) if len(axes) > 1 else pd.Series("", index=table.index)
    columns = list(dict.fromkeys(table[axes[-1]].map(shown)))
    cells: dict[tuple[str, str], pd.Series] = {
        (r, shown(c)): row for r, c, (_, row) in zip(rows, table[axes[-1]], table.iterrows(), strict=True)
    }
    head = f"<tr><th>{html.escape(' · '.join(axes[:-1]))}</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    out = [f'<table class="completeness" data-cells="{len(table)}">', head + "</tr>"]
    for r in dict.fromkeys(rows):
        out.append(f"<tr><th>{html.escape(r)}</th>")
        for c in columns:
            row = cells.get((r, c))
            if row is None or not row["planned"]:
                kind = "hole"
            elif row["failed"] or row[UNHEALTHY]:
                kind = "broken"
            else:
                kind = "complete" if row["complete"] else "partial"
            text = completeness.label(row) if row is not None else "—"
            out.append(f'<td class="{kind}">{html.escape(text)}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def curve_figure(table: pd.DataFrame) -> go.Figure:
    """Panels per metric, a line per trial; a trial stopped by the scheduler ends in a cross."""
    metrics = list(dict.fromkeys(table["metric"]))
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for col, metric in enumerate(metrics, 1):
        for (key, name, state), points in table[table["metric"] == metric].groupby(["key", "name", "state"]):
            symbols = ["circle"] * (len(points) - 1) + ["x" if state == "stopped" else "circle"]
            figure.add_trace(
                go.Scatter(
                    x=points["step"],
                    y=points["value"],
                    mode="lines+markers",
                    marker={"symbol": symbols, "size": [4] * (len(points) - 1) + [10 if state == "stopped" else 4]},
                    name=f"{name} ({state})",
                    legendgroup=key,
                    showlegend=col == 1,
                    hovertemplate=f"<b>{html.escape(name)}</b><br>key {key}<br>step %{{x}}<br>{metric}=%{{y:.4g}}"
                    "<extra></extra>",
                ),
                row=1,
                col=col,
            )
        figure.update_xaxes(title_text="step", row=1, col=col)
    figure.update_layout(height=400, margin={"t": 40})
    return figure


def table_html(frame: pd.DataFrame, css: str) -> str:
    if frame.empty:
        return "<p>Nothing to show.</p>"
    return frame.to_html(index=False, classes=css, float_format=lambda v: f"{v:.4g}", na_rep="—", border=0)
