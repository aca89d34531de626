"""Pareto fronts: which configurations no other beats on both the main metric and a cost.

Per (model, task), the main metric against KV-cache memory and against latency or throughput,
each in its declared direction; repeats over seeds are compared by their mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from sweeps.study.records import Records, aggregate_seeds, finished

#: costs the main metric is traded against, when the trials report them
COSTS = ("kv_cache_mb", "seconds_per_sample", "prefill_tokens_per_s", "decode_tokens_per_s")
#: what a front is drawn per, when the trials have these parameters
GROUP_BY = ("model", "task")
BASELINE = "baseline"


def pareto_mask(xs: Sequence[float], ys: Sequence[float], x_lower: bool, y_lower: bool) -> list[bool]:
    """For each point: whether no other point is at least as good on both and better on one.

    Points with a missing coordinate are never on the front.
    """

    def oriented(value: float, lower: bool) -> float:
        return -value if lower else value  # larger is better after orienting

    points = [
        None if _missing(x) or _missing(y) else (oriented(float(x), x_lower), oriented(float(y), y_lower))
        for x, y in zip(xs, ys, strict=True)
    ]
    mask = []
    for i, p in enumerate(points):
        if p is None:
            mask.append(False)
            continue
        dominated = any(
            q is not None and j != i and q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])
            for j, q in enumerate(points)
        )
        mask.append(not dominated)
    return mask


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def groups(records: Records) -> list[str]:
    return [g for g in GROUP_BY if g in records.params]


def fronts(records: Records, include_unhealthy: bool = False) -> pd.DataFrame:
    """One row per (model, task, cost, configuration): the main metric, the cost, ``on_front``.

    Unhealthy trials are left off unless ``include_unhealthy``; ``baseline`` is the baseline's
    main metric in the same (model, task), the reference line of the plots.
    """
    data = aggregate_seeds(records, finished(records, include_unhealthy))
    main = records.main
    costs = [c for c in COSTS if c in data.columns and data[c].notna().any()]
    if data.empty or main not in data.columns or not costs:
        return pd.DataFrame()
    by = groups(records)
    out = []
    for _, group in data.groupby(by, sort=True, dropna=False) if by else [((), data)]:
        reference = _baseline(group, main)
        for cost in costs:
            usable = group[group[main].notna() & group[cost].notna()]
            if usable.empty:
                continue
            mask = pareto_mask(
                list(usable[cost]), list(usable[main]), records.lower_is_better(cost), records.lower_is_better(main)
            )
            part = usable.assign(cost=cost, cost_value=usable[cost], on_front=mask, baseline=reference)
            out.append(part)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _baseline(group: pd.DataFrame, main: str) -> float:
    if "technique" not in group.columns:
        return float("nan")
    values = group.loc[group["technique"] == BASELINE, main].dropna()
    return float(values.mean()) if len(values) else float("nan")
