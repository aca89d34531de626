"""One row per trial — planned or stored — as CSV or Parquet, for plots and papers.

Pending and failed trials are rows too: a missing cell in a results table should be
visible as a status, not discovered when a plot comes out with a gap.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweeps.secrets import redact
from sweeps.store import SweepStore

FORMATS = ("csv", "parquet")


def rows(store: SweepStore) -> list[dict]:
    """The sweep's trials as flat rows: key, name, status, note, parameters, metrics."""
    plan = store.plan()
    planned = {row["key"] for row in plan}
    extra = [
        {"key": k, "name": k, "params": (store.result(k) or {}).get("params", {}), "in_plan": False}
        for k in store.result_keys()
        if k not in planned
    ]
    alive = store.launcher_alive()
    out = []
    for row in [*plan, *extra]:
        state = store.state(row["key"], alive)
        result = state.result or {}
        params = redact(row.get("params") or result.get("params") or {})
        metrics = result.get("metrics") or {} if state.status in ("done", "stopped") else {}
        flat = {
            "key": row["key"],
            "name": row.get("name", row["key"]),
            "status": state.status,
            "note": state.note or None,
            "in_plan": row.get("in_plan", True),
        }
        for name, value in params.items():
            flat[name] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
        for name, value in metrics.items():
            flat[name if name not in flat else f"metric.{name}"] = value
        missing = result.get("missing") or {}
        flat["missing"] = "; ".join(f"{k}: {v}" for k, v in sorted(missing.items())) or None
        flat["duration_s"] = result.get("duration_s") if state.status in ("done", "stopped") else None
        out.append(flat)
    return out


def to_table(records: list[dict]) -> pa.Table:
    columns: list[str] = []
    for record in records:
        columns += [c for c in record if c not in columns]
    data = {c: [r.get(c) for r in records] for c in columns}
    arrays = {}
    for name, values in data.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across trials: keep them readable
            arrays[name] = pa.array([None if v is None else str(v) for v in values])
    return pa.table(arrays)


def export(store: SweepStore, fmt: str, output: Path) -> int:
    """Write the sweep's table to ``output``; returns the number of rows."""
    table = to_table(rows(store))
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, output)
    else:
        pacsv.write_csv(table, output)
    return table.num_rows
