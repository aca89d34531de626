"""What the post-training evaluation tasks share: a JSON Lines file given as ``data``."""

from __future__ import annotations

from pathlib import Path

from evaluators.tasks.checks import file_problems
from evaluators.tasks.datafiles import Row, pick, read_jsonl


def data_problems(data: str) -> list[tuple[str, str]]:
    if not data.endswith(".jsonl"):
        return [("data", f"expected a JSON Lines file (.jsonl), got {data!r}")]
    return file_problems("data", Path(data))


def rows(data: str, count: int, seed: int, task: str) -> list[Row]:
    """``count`` rows of the file in an order fixed by ``seed`` (all rows, shuffled, when there are fewer)."""
    return pick(read_jsonl(Path(data), f"{task} data file"), count, seed, task)


def sample_id(row: Row, task: str) -> str:
    return str(row.data.get("id", f"{task}-{row.line}"))
