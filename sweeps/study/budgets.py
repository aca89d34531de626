"""Per technique: the best main metric at each memory budget, against the baseline.

A budget is the trial's ``cache_size`` (tokens kept per layer); techniques without one
(baseline, int8, int4) keep the full cache. "Best" follows the main metric's direction,
over everything else that varies (window, pooling, ...), repeats averaged over seeds first.
"""

from __future__ import annotations

import pandas as pd

from sweeps.study.fronts import BASELINE, groups
from sweeps.study.records import Records, aggregate_seeds, finished

BUDGET = "cache_size"
FULL = "full"


def best_per_budget(records: Records, include_unhealthy: bool = False) -> pd.DataFrame:
    """One row per (model, task, technique, budget): best value, its trial, kv_cache_mb, baseline, delta, ratio."""
    main = records.main
    data = aggregate_seeds(records, finished(records, include_unhealthy))
    if data.empty or main not in data.columns or "technique" not in data.columns:
        return pd.DataFrame()
    data = data[data[main].notna()].copy()
    data["budget"] = data[BUDGET].map(lambda v: FULL if pd.isna(v) else int(v)) if BUDGET in data else FULL
    by = groups(records)
    lower = records.lower_is_better(main)
    out = []
    for _, group in data.groupby(by, sort=True, dropna=False) if by else [((), data)]:
        base = group.loc[group["technique"] == BASELINE, main]
        reference = float(base.mean()) if len(base) else float("nan")
        for (technique, budget), cell in group.groupby(["technique", "budget"], sort=False):
            best = cell.sort_values(main, ascending=lower, kind="stable").iloc[0]
            row = {g: best[g] for g in by}
            row.update(
                technique=technique,
                budget=budget,
                metric=main,
                best=best[main],
                best_std=best.get(f"{main}_std"),
                n=best["n"],
                best_trial=best["names"],
                keys=best["keys"],
                kv_cache_mb=best.get("kv_cache_mb"),
                baseline=reference,
                vs_baseline=best[main] - reference,
                ratio_to_baseline=best[main] / reference if reference else float("nan"),
            )
            out.append(row)
    table = pd.DataFrame(out)
    order = table["budget"].map(lambda b: float("inf") if b == FULL else b)
    return table.assign(_order=order).sort_values([*by, "technique", "_order"]).drop(columns="_order")
