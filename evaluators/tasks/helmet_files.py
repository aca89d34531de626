"""What HELMET's data files share: where they live under ``data_dir`` and how passages are parsed.

HELMET (princeton-nlp/HELMET) ships its data as ``data/`` with one folder per task family
(``kilt/``, ``msmarco/``, ...). Tasks take that folder as ``data_dir`` and find HELMET's own
file names in it, or an explicit file relative to it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from evaluators.tasks.datafiles import Row


def resolve(data_dir: str, override: str, default: str) -> Path:
    """``override`` (absolute, or relative to ``data_dir``) when given, else HELMET's file name."""
    name = override or default
    path = Path(name)
    return path if path.is_absolute() else Path(data_dir) / path


def passages(row: Row, field: str = "ctxs", needs: tuple[str, ...] = ("title", "text")) -> list[dict[str, Any]]:
    """The row's list of passages, each checked for the fields the prompt uses."""
    items = row.get(field, list)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise row.error(f"{field}[{index}] must be an object, got {type(item).__name__}")
        for name in needs:
            if name not in item or item[name] is None:
                raise row.error(f"{field}[{index}] is missing field {name!r}")
    return items


def demo_choice(rows: list[Row], exclude: str, key: str, shots: int, seed: str) -> list[Row]:
    """``shots`` demonstration rows whose ``key`` differs from ``exclude``, fixed by ``seed``."""
    pool = [r for r in rows if str(r.data.get(key)) != exclude]
    random.Random(seed).shuffle(pool)
    chosen, seen = [], set()
    for candidate in pool:
        value = str(candidate.data.get(key))
        if value not in seen:
            seen.add(value)
            chosen.append(candidate)
        if len(chosen) == shots:
            break
    return chosen
