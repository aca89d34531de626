"""One row per trial — planned or stored — as CSV or Parquet, for plots and papers.

Pending and failed trials are rows too: a missing cell in a results table should be
visible as a status, not discovered when a plot comes out with a gap.
"""

from __future__ import annotations

import os
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


class OutputError(Exception):
    """The export's output path cannot be written; the message says which path and why."""


def output_problem(output: Path) -> str | None:
    """Why ``output`` cannot be written (checked before the table is built), or None."""
    folder = output.parent
    if output.is_dir():
        return f"{output} is a folder; name a file in it, e.g. {output / ('sweep' + (output.suffix or '.csv'))}"
    if not folder.exists():
        return f"the folder {folder} does not exist (create it first)"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if output.exists() and not os.access(output, os.W_OK):
        return f"{output} is not writable"
    if not output.exists() and not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable"
    return None


def export(store: SweepStore, fmt: str, output: Path) -> int:
    """Write the sweep's table to ``output``; returns the number of rows.

    Raises OutputError, naming the path and the reason, when ``output`` cannot be written.
    """
    problem = output_problem(output)
    if problem:
        raise OutputError(problem)
    table = to_table(rows(store))
    partial = output.with_name(f".{output.name}.partial")  # renamed into place once whole
    try:
        if fmt == "parquet":
            pq.write_table(table, partial)
        else:
            pacsv.write_csv(table, partial)
        os.replace(partial, output)
    except OSError as exc:  # a read-only file system, a full disk: the system's own reason
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    return table.num_rows
