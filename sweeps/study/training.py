"""Training sweeps: per-step curves of each trial, from what Ray Tune kept in storage.

Tune's JSON logger writes every result a trial reported, one line each, to
``<sweep>/_tune/<launch>/<trial key>/result.json``; a resumed trial has one such file per
launch, and its step count goes on, so the launches' lines join into one curve (a step
reported twice keeps its latest value).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sweeps.store import SweepStore
from sweeps.workload import STEP

TUNE_DIR = "_tune"
TUNE_RESULTS = "result.json"
#: per-step metrics drawn as curves, when a trial reported them
CURVES = ("loss", "eval_loss", "reward")


def history(store: SweepStore, key: str) -> pd.DataFrame:
    """One row per (step, metric) the trial reported at a training step, over all its launches."""
    points: dict[tuple[float, str], float] = {}
    for path in sorted((store.root / TUNE_DIR).glob(f"*/{key}/{TUNE_RESULTS}")):
        for line in _lines(path):
            step = line.get(STEP)
            if not isinstance(step, (int, float)):
                continue
            for metric, value in line.items():
                if _curve(metric) and isinstance(value, (int, float)) and not isinstance(value, bool):
                    points[(float(step), metric)] = float(value)
    rows = [{"key": key, STEP: step, "metric": metric, "value": value} for (step, metric), value in points.items()]
    return pd.DataFrame(rows, columns=["key", STEP, "metric", "value"]).sort_values(["metric", STEP])


def _curve(metric: str) -> bool:
    return metric in CURVES or (metric.startswith("rewards/") and metric.endswith("/mean"))


def _lines(path: Path) -> list[dict]:
    out = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:  # a line cut off by a kill
            continue
        if isinstance(line, dict):
            out.append(line)
    return out


def curves(store: SweepStore, frame: pd.DataFrame) -> pd.DataFrame:
    """Every trial's curves, with its name and state (a stop by ASHA shows as ``stopped``)."""
    parts = []
    for _, row in frame.iterrows():
        part = history(store, row["key"])
        if not part.empty:
            parts.append(part.assign(name=row["name"], state=row["state"]))
    columns = ["key", STEP, "metric", "value", "name", "state"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
