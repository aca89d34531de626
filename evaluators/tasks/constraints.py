"""A small language of numeric constraints on JSON outputs: per-item bounds and per-group sums.

Paths select values in a JSON document: dotted object keys, ``[n]`` for one list item and
``[*]`` for every item, e.g. ``schedule[*].load`` or ``totals.cost``. A constraint is an object:

- ``{"path": "schedule[*].load", "min": 0, "max": 100}`` — every value the path selects is a
  number within the bounds (per-item bounds);
- ``{"path": "schedule[*]", "field": "load", "max": 500}`` — the ``field`` values of the
  selected items sum to within the bounds (a total);
- ``{"path": "schedule[*]", "field": "load", "sum_by": "hour", "max": 50}`` — the selected
  items are grouped by their ``sum_by`` value and each group's ``field`` sum is within the
  bounds (e.g. a per-hour capacity).

``min`` and ``max`` are inclusive; at least one is required; ``name`` optionally labels the
constraint in reports. A path that selects nothing satisfies a constraint (there is nothing
to bound); a selected value that is not a number (or an item without ``field``) violates it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\*)\]")
_KEYS = {"path", "min", "max", "field", "sum_by", "name"}


def parse_path(path: str) -> list[str | int]:
    """``schedule[*].load`` → ``["schedule", "*", "load"]`` (list indexes as ints); ValueError if malformed."""
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        if not match or match.end() == position:
            raise ValueError(f"malformed path {path!r} at character {position}")
        key, index = match.groups()
        steps.append(key if key is not None else ("*" if index == "*" else int(index)))
        position = match.end()
    if not steps:
        raise ValueError("empty path")
    return steps


def select(document: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``document`` (missing keys and indexes reach nothing)."""
    current = [document]
    for step in parse_path(path):
        following = []
        for value in current:
            if step == "*" and isinstance(value, list):
                following.extend(value)
            elif _has(value, step):
                following.append(value[step])
        current = following
    return current


def _has(value: Any, step: str | int) -> bool:
    if isinstance(step, int):
        return isinstance(value, list) and -len(value) <= step < len(value)
    return step != "*" and isinstance(value, dict) and step in value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Constraint:
    path: str
    min: float | None = None
    max: float | None = None
    field: str | None = None
    sum_by: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, spec: Any) -> Constraint:
        """A constraint from its JSON form; ValueError naming what is wrong."""
        if not isinstance(spec, dict):
            raise ValueError(f"a constraint must be an object, got {spec!r}")
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"unknown constraint key(s) {sorted(unknown)}; accepted: {sorted(_KEYS)}")
        if not isinstance(spec.get("path"), str):
            raise ValueError(f"constraint {spec} needs a 'path' string")
        parse_path(spec["path"])
        bounds = {k: spec.get(k) for k in ("min", "max")}
        if all(v is None for v in bounds.values()):
            raise ValueError(f"constraint {spec} needs 'min' or 'max'")
        for key, value in bounds.items():
            if value is not None and _number(value) is None:
                raise ValueError(f"constraint {spec}: {key} must be a number")
        if spec.get("sum_by") is not None and spec.get("field") is None:
            raise ValueError(f"constraint {spec}: 'sum_by' needs 'field' (the value to sum)")
        for key in ("field", "sum_by", "name"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise ValueError(f"constraint {spec}: {key} must be a string")
        return cls(**{key: spec.get(key) for key in ("path", "min", "max", "field", "sum_by", "name")})

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        bounds = " ".join(f"{k}={v}" for k, v in (("min", self.min), ("max", self.max)) if v is not None)
        if self.field is None:
            return f"{self.path} {bounds}"
        group = f" by {self.sum_by}" if self.sum_by else ""
        return f"sum of {self.path}.{self.field}{group} {bounds}"

    def _within(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def problems(self, document: Any) -> list[str]:
        """How ``document`` breaks this constraint (empty when it holds)."""
        selected = select(document, self.path)
        if self.field is None:
            out = []
            for value in selected:
                number = _number(value)
                if number is None or not self._within(number):
                    out.append(f"{self.label}: value {value!r}")
            return out
        groups: dict[str, list[Any]] = {}
        for item in selected:
            key = item.get(self.sum_by) if self.sum_by and isinstance(item, dict) else None
            groups.setdefault(repr(key), []).append(item.get(self.field) if isinstance(item, dict) else None)
        out = []
        for key, values in groups.items():
            numbers = [_number(v) for v in values]
            where = f" for {self.sum_by}={key}" if self.sum_by else ""
            if any(n is None for n in numbers):
                out.append(f"{self.label}{where}: a {self.field} is missing or not a number")
            elif not self._within(sum(numbers)):  # type: ignore[arg-type]
                out.append(f"{self.label}{where}: sum {sum(numbers):g}")  # type: ignore[arg-type]
        return out
