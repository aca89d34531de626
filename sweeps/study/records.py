"""A sweep's trials as one table: the export's rows plus health flags and the grid's axes.

Everything the report shows is derived from this table, which is read from storage alone
(plan.json and each trial's result.json), so a report needs neither Ray nor MLflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from sweeps.export import rows
from sweeps.store import DONE, FAILED, PENDING, RUNNING, STOPPED, SweepStore
from sweeps.workload import HEALTH_PREFIX, LOWER

#: a done trial whose outputs are mostly broken (``health.*`` tags): its own state in every view
UNHEALTHY = "unhealthy"
STATES = (DONE, UNHEALTHY, STOPPED, FAILED, RUNNING, PENDING)
SEED = "seed"
#: columns of an export row that are not parameters
BOOKKEEPING = ("key", "name", "status", "note", "in_plan", "missing", "duration_s")


@dataclass
class Records:
    """One row per trial, which columns are parameters and metrics, and how metrics compare."""

    frame: pd.DataFrame
    params: list[str]
    metrics: list[str]
    #: parameters with more than one value among the trials: the grid's axes
    axes: list[str]
    #: the workload's main metric and every metric's direction (see ``sweeps.workload.Workload``)
    main: str = "score"
    directions: dict[str, str] = field(default_factory=dict)
    workload: str = ""

    def lower_is_better(self, metric: str) -> bool:
        return self.directions.get(metric) == LOWER

    def varies(self, column: str) -> bool:
        return column in self.frame and self.frame[column].dropna().astype(str).nunique() > 1


def health_of(result: dict | None) -> str | None:
    """The trial's ``health.*`` tags as one line, or None for a healthy (or unfinished) trial."""
    tags = (result or {}).get("tags") or {}
    found = [f"{k.removeprefix(HEALTH_PREFIX)}: {v}" for k, v in sorted(tags.items()) if k.startswith(HEALTH_PREFIX)]
    return "; ".join(found) or None


def load(store: SweepStore) -> Records:
    """Read the sweep's trials from storage (the workload's main metric and directions are set by the caller)."""
    plan_params = {name for row in store.plan() for name in (row.get("params") or {})}
    table = rows(store)
    for row in table:
        result = store.result(row["key"]) or {}
        row["health"] = health_of(result) if row["status"] == DONE else None
        row["state"] = UNHEALTHY if row["health"] else row["status"]
        row["stopped_by"] = result.get("stopped_by") if row["status"] == STOPPED else None
    frame = pd.DataFrame(table)
    if frame.empty:
        frame = pd.DataFrame(columns=[*BOOKKEEPING, "health", "state", "stopped_by"])
    derived = (*BOOKKEEPING, "health", "state", "stopped_by")
    params = [c for c in frame.columns if c in plan_params and c not in derived]
    metrics = [c for c in frame.columns if c not in plan_params and c not in derived]
    records = Records(frame, params, metrics, [])
    records.axes = [p for p in params if records.varies(p)]
    return records


def shown(value: object) -> str:
    """A parameter value as the sweep file wrote it: ``64`` rather than pandas' ``64.0``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def config_id(row: pd.Series, params: list[str]) -> str:
    """What identifies a configuration apart from its seed: repeats share it."""
    return json.dumps({p: _plain(row.get(p)) for p in params if p != SEED}, sort_keys=True, default=str)


def _plain(value: object) -> object:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def aggregate_seeds(records: Records, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Trials that differ only in ``seed`` as one row: each metric's mean, ``<metric>_std`` and ``n``.

    ``keys`` and ``names`` list the members, ``health`` joins theirs; a configuration run
    with one seed has ``n`` 1 and a std of NaN.
    """
    frame = records.frame if frame is None else frame
    columns = [*records.params, "keys", "names", "health", "n", *records.metrics]
    columns += [f"{m}_std" for m in records.metrics]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    ids = frame.apply(lambda row: config_id(row, records.params), axis=1)
    out = []
    for _, group in frame.groupby(ids, sort=False):
        first = group.iloc[0]
        row = {p: first.get(p) for p in records.params if p != SEED}
        row["keys"] = " ".join(group["key"])
        row["names"] = " | ".join(group["name"])
        health = [h for h in group["health"] if isinstance(h, str)]
        row["health"] = "; ".join(health) or None
        row["n"] = len(group)
        if SEED in records.params:
            row[SEED] = ", ".join(str(s) for s in group[SEED].dropna().unique())
        for metric in records.metrics:
            values = pd.to_numeric(group[metric], errors="coerce").dropna()
            row[metric] = values.mean() if len(values) else float("nan")
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def per_setting(records: Records) -> pd.DataFrame:
    """Seeds aggregated per (configuration, state): one row each, its ``state`` beside the metrics.

    A trial the scheduler stopped early reports the metrics of a shorter run; averaged with a seed
    that trained to the end it would show a number no run had. Its row says who stopped it
    (``stopped: asha on eval_loss``). Settings keep the plan's order, states the order of ``STATES``.
    """
    frame = records.frame
    if frame.empty:
        return aggregate_seeds(records).assign(state=pd.Series(dtype=str))
    ids = frame.apply(lambda row: config_id(row, records.params), axis=1)
    setting_order = {config: i for i, config in enumerate(dict.fromkeys(ids))}
    setting_of = dict(zip(frame["key"], ids, strict=True))
    parts = []
    for rank, state in enumerate(STATES):
        members = frame[frame["state"] == state]
        if members.empty:
            continue
        part = aggregate_seeds(records, members)
        label = state
        if state == STOPPED:
            by = sorted({str(b) for b in members["stopped_by"].dropna()})
            label = f"{STOPPED}: {', '.join(by)}" if by else STOPPED
        part.insert(part.columns.get_loc("keys"), "state", label)
        part["_order"] = [(setting_order[setting_of[keys.split()[0]]], rank) for keys in part["keys"]]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def finished(records: Records, include_unhealthy: bool) -> pd.DataFrame:
    """Done trials (and, when asked, unhealthy ones): what fronts, heatmaps and summaries compare."""
    frame = records.frame
    states = [DONE, UNHEALTHY] if include_unhealthy else [DONE]
    return frame[frame["state"].isin(states)]
