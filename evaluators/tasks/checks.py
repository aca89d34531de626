"""Parameter checks shared by tasks: the ``(field, message)`` pairs that ``check()`` returns."""

from __future__ import annotations

from pathlib import Path

#: the shortest context any synthetic task is generated for
MIN_CONTEXT = 64


def depths_of(value: float | list[float]) -> list[float]:
    """A depth parameter as a list: one depth, or several spread over the samples in turn."""
    return list(value) if isinstance(value, list) else [value]


def depth_problems(field: str, value: float | list[float]) -> list[tuple[str, str]]:
    depths = depths_of(value)
    if not depths or any(not 0.0 <= d <= 1.0 for d in depths):
        return [(field, f"depths are fractions of the context in [0, 1], got {value}")]
    return []


def context_length_problems(value: int) -> list[tuple[str, str]]:
    if value < MIN_CONTEXT:
        return [("context_length", f"must be at least {MIN_CONTEXT} tokens, got {value}")]
    return []


def at_least(field: str, value: int, minimum: int) -> list[tuple[str, str]]:
    return [(field, f"must be at least {minimum}, got {value}")] if value < minimum else []


def file_problems(field: str, *paths: Path) -> list[tuple[str, str]]:
    """One problem per data file that does not exist, so a typo in a path fails before launch."""
    return [(field, f"file not found: {p}") for p in paths if not p.is_file()]
