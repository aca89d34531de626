"""The best configuration per (model, task): the sweep's answer in one line per cell of the study.

"Best" follows the main metric's direction over healthy finished trials, repeats over seeds
averaged first (as the fronts and heatmaps compare them); a tie goes to the configuration that
costs less (the fronts' first cost the trials report, e.g. ``kv_cache_mb``), then to grid order.
"""

from __future__ import annotations

import pandas as pd

from sweeps.study.fronts import COSTS, groups
from sweeps.study.records import Records, aggregate_seeds, finished


def best_per_group(records: Records) -> pd.DataFrame:
    """One row per (model, task): the group's values, ``names``, ``keys``, ``n`` and every metric of the best."""
    main = records.main
    data = aggregate_seeds(records, finished(records, include_unhealthy=False))
    if data.empty or main not in data.columns:
        return pd.DataFrame()
    data = data[pd.to_numeric(data[main], errors="coerce").notna()]
    if data.empty:
        return pd.DataFrame()
    by = groups(records)
    order = [main, *[c for c in COSTS if c in data.columns and data[c].notna().any()][:1]]
    ascending = [records.lower_is_better(m) for m in order]
    rows = []
    for _, group in data.groupby(by, sort=True, dropna=False) if by else [((), data)]:
        rows.append(group.sort_values(order, ascending=ascending, kind="stable").iloc[0])
    return pd.DataFrame(rows).reset_index(drop=True)
