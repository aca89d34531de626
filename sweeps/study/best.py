"""The best configuration per (model, task): the sweep's answer in one line per cell of the study.

"Best" follows the main metric's direction over healthy finished trials, repeats over seeds
averaged first (as the fronts and heatmaps compare them); ties keep the grid's order.
"""

from __future__ import annotations

import pandas as pd

from sweeps.study.fronts import groups
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
    lower = records.lower_is_better(main)
    rows = []
    for _, group in data.groupby(by, sort=True, dropna=False) if by else [((), data)]:
        rows.append(group.sort_values(main, ascending=lower, kind="stable").iloc[0])
    return pd.DataFrame(rows).reset_index(drop=True)
