"""The completeness matrix: every cell of the grid's axes with its trials by state, so holes show.

Cells are the product of the values each axis takes anywhere in the sweep: a combination no
trial covers (a task never run with a technique) is a row of zeros, not a missing row.
"""

from __future__ import annotations

import itertools

import pandas as pd

from sweeps.study.records import STATES, Records

DEFAULT_AXES = ("model", "technique", "task")


def default_axes(records: Records) -> list[str]:
    """model × technique × task where the sweep has them; where none of them varies (a LoRA
    sweep on one model), the grid's own axes (up to three) after them."""
    present = [a for a in DEFAULT_AXES if a in records.params]
    if any(records.varies(a) for a in present):
        return present
    return [*present, *[a for a in records.axes if a not in present][:3]]


def matrix(records: Records, axes: list[str] | None = None) -> pd.DataFrame:
    """One row per cell: the axes' values, ``planned`` and a count per state (done, unhealthy, ...)."""
    axes = default_axes(records) if axes is None else axes
    frame = records.frame
    columns = [*axes, "planned", *STATES, "complete"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    values = [
        sorted(frame[a].dropna().unique().tolist(), key=str) + ([None] if frame[a].isna().any() else []) for a in axes
    ]
    out = []
    for cell in itertools.product(*values):
        mask = pd.Series(True, index=frame.index)
        for axis, value in zip(axes, cell, strict=True):
            mask &= frame[axis].isna() if value is None else frame[axis] == value
        states = frame.loc[mask, "state"].value_counts()
        row = dict(zip(axes, cell, strict=True))
        row["planned"] = int(mask.sum())
        row.update({s: int(states.get(s, 0)) for s in STATES})
        row["complete"] = row["planned"] > 0 and row["done"] == row["planned"]
        out.append(row)
    return pd.DataFrame(out, columns=columns)


def label(row: pd.Series) -> str:
    """A cell's short text: ``3/4 done · 1 failed``, or ``—`` for a hole."""
    if not row["planned"]:
        return "—"
    parts = [f"{row['done']}/{row['planned']} done"]
    parts += [f"{row[s]} {s}" for s in STATES if s != "done" and row[s]]
    return " · ".join(parts)
