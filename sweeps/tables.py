"""Tables for the terminal: the plan before a launch, and trial states during and after."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sweeps.store import DONE, FAILED, PENDING, RUNNING, STOPPED, TrialState
from sweeps.workload import HEALTH_PREFIX

STYLE = {DONE: "green", STOPPED: "magenta", RUNNING: "cyan", FAILED: "red", PENDING: "dim"}


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plan_table(title: str, rows: Sequence[Mapping], groups: Mapping[str, int] | None = None) -> Table:
    """Trial key and readable name (which spells out the parameters that vary), and its trial group if any.

    The number and key columns never wrap, so their widths are known without measuring
    every cell: rich then measures only the names, which matters for plans of thousands of trials.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim", no_wrap=True, width=len(str(len(rows))))
    table.add_column("key", style="bold", no_wrap=True, width=max([len("key"), *(len(row["key"]) for row in rows)]))
    table.add_column("trial")
    if groups:
        table.add_column("group", justify="right")
    for i, row in enumerate(rows, 1):
        cells = [str(i), row["key"], Text(row["name"])]  # user values, shown literally
        if groups:
            number = groups.get(row["key"])
            cells.append("done" if number is None else str(number))
        table.add_row(*cells)
    return table


def state_table(
    title: str, plan_rows: Sequence[Mapping], states: Mapping[str, TrialState], metrics: Sequence[str]
) -> Table:
    """One row per trial: key, readable name, status and key metrics (notes go below: see ``notes``)."""
    table = Table(title=title, title_justify="left")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("trial", min_width=18)
    table.add_column("status", no_wrap=True)
    for name in metrics:
        table.add_column(name, justify="right")
    for row in plan_rows:
        state = states[row["key"]]
        values = ((state.result or {}).get("metrics") or {}) if state.status in (DONE, STOPPED) else {}
        table.add_row(
            row["key"],
            Text(row["name"]),
            f"[{STYLE[state.status]}]{state.status}[/]",
            *[_cell(values.get(m)) for m in metrics],
        )
    return table


def notes(plan_rows: Sequence[Mapping], states: Mapping[str, TrialState]) -> list[str]:
    """Lines for under the table: why trials failed or are pending again, health warnings,
    and metrics that could not be computed."""
    lines = []
    for row in plan_rows:
        state = states[row["key"]]
        where = escape(f"{row['key']} ({row['name']})")  # notes are markup; user text is not
        if state.note:
            first = state.note.strip().splitlines()[0][:300]
            lines.append(f"[{STYLE[state.status]}]{state.status}[/] {where}: {escape(first)}")
        if state.status != DONE:
            continue
        result = state.result or {}
        for tag, value in sorted((result.get("tags") or {}).items()):
            if tag.startswith(HEALTH_PREFIX):
                lines.append(f"[yellow]⚠ {escape(tag)}[/] {where}: {escape(str(value))}")
        for metric, reason in sorted((result.get("missing") or {}).items()):
            lines.append(f"[dim]missing {escape(metric)}[/] {where}: {escape(str(reason))}")
    return lines


def counts_line(counts: Counter | Mapping[str, int]) -> str:
    order = (DONE, STOPPED, RUNNING, FAILED, PENDING)
    parts = [f"[{STYLE[s]}]{counts.get(s, 0)} {s}[/]" for s in order if counts.get(s, 0)]
    return ", ".join(parts) or "no trials"


def metric_names(states: Iterable[TrialState], preferred: Sequence[str]) -> list[str]:
    """Preferred metrics first (those that occur), for tables that must stay narrow."""
    seen: set[str] = set()
    for state in states:
        seen.update(((state.result or {}).get("metrics") or {}).keys())
    return [m for m in preferred if m in seen]
