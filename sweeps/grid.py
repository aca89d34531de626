"""Grid expansion: the sweep file's ``fixed`` and ``grid`` sections become a list of flat trial configs.

Rules (DESIGN.md): every list in ``grid`` is an axis; a list of mappings is a union of
sub-grids, so parameters that only apply to one technique never multiply the others;
lists nested inside such a mapping are axes of that sub-grid. A bare mapping is a
sub-grid of its own. Keys in ``literal_keys`` take mappings as values (e.g. GRPO
``rewards``), so for them a list of mappings is an axis of mapping values.

Every expanded value remembers where it came from (``grid.method[2].window_size[1]``)
so that validation errors point at the line the user has to change.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sweeps.errors import FieldError, SpecError

MAX_TRIALS = 20_000
#: sub-grids inside sub-grids; real files use two or three levels
MAX_NESTING = 16


@dataclass
class Cell:
    """One expanded grid cell: flat parameters and the file location of each."""

    params: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def _merge(a: Cell, b: Cell, errors: list[FieldError]) -> Cell:
    for key in a.params.keys() & b.params.keys():
        errors.append(
            FieldError(
                path=b.sources[key],
                message=f"{key!r} is already set by {a.sources[key]}",
                hint="set each parameter in one place of a sub-grid only",
            )
        )
    return Cell({**a.params, **b.params}, {**a.sources, **b.sources})


def _axis(key: str, value: object, path: str, literal_keys: Collection[str], errors: list[FieldError]) -> list[Cell]:
    """The options one key contributes: values of an axis, or the cells of sub-grids."""
    if isinstance(value, Mapping) and key not in literal_keys:
        return _expand(value, path, literal_keys, errors)
    if not isinstance(value, list):
        return [Cell({key: value}, {key: path})]
    if not value:
        errors.append(
            FieldError(path=path, message="an empty list gives no trials", hint="remove the key or list a value")
        )
        return []
    mappings = [isinstance(v, Mapping) for v in value]
    if key not in literal_keys and any(mappings):
        if not all(mappings):
            errors.append(
                FieldError(
                    path=path,
                    message="mixes mappings (sub-grids) and plain values in one list",
                    hint="write every option as a mapping, e.g. - {technique: baseline}",
                )
            )
            return []
        cells: list[Cell] = []
        for i, sub in enumerate(value):
            cells += _expand(sub, f"{path}[{i}]", literal_keys, errors)
        return cells
    return [Cell({key: v}, {key: f"{path}[{i}]"}) for i, v in enumerate(value)]


def _expand(mapping: Mapping, path: str, literal_keys: Collection[str], errors: list[FieldError]) -> list[Cell]:
    axes = [_axis(str(k), v, f"{path}.{k}", literal_keys, errors) for k, v in mapping.items()]
    size = 1
    for options in axes:
        size *= len(options)
    if size > MAX_TRIALS:
        errors.append(FieldError(path=path, message=f"expands to {size} trials, more than {MAX_TRIALS}"))
        return []
    cells = []
    for combo in itertools.product(*axes):
        cell = Cell()
        for part in combo:
            cell = _merge(cell, part, errors)
        cells.append(cell)
    return cells


def count(grid: Mapping, literal_keys: Collection[str] = ()) -> int:
    """How many cells ``grid`` expands to, computed from its shape without expanding it.

    So a grid of a billion trials is refused in microseconds. An empty axis (an error of its
    own) counts as one, so that no sub-grid is ever larger than the count. Raises SpecError when sub-grids
    nest deeper than MAX_NESTING (which only a generated or malicious file does).
    """
    return _count_mapping(grid, "grid", literal_keys, {}, 0)


def _count_mapping(mapping: Mapping, path: str, literal_keys: Collection[str], memo: dict, depth: int) -> int:
    if depth > MAX_NESTING:
        raise SpecError([FieldError(path, f"sub-grids nest more than {MAX_NESTING} levels deep")])
    if id(mapping) in memo:  # YAML aliases share one object: count it once
        return memo[id(mapping)]
    size = 1
    for key, value in mapping.items():
        size *= _count_axis(str(key), value, f"{path}.{key}", literal_keys, memo, depth)
    memo[id(mapping)] = size
    return size


def _count_axis(key: str, value: object, path: str, literal_keys: Collection[str], memo: dict, depth: int) -> int:
    if isinstance(value, Mapping) and key not in literal_keys:
        return _count_mapping(value, path, literal_keys, memo, depth + 1)
    if not isinstance(value, list):
        return 1
    if key not in literal_keys and value and all(isinstance(v, Mapping) for v in value):
        return sum(_count_mapping(sub, f"{path}[{i}]", literal_keys, memo, depth + 1) for i, sub in enumerate(value))
    return max(len(value), 1)


def expand(fixed: Mapping, grid: Mapping, literal_keys: Collection[str] = ()) -> list[Cell]:
    """All trial cells of a sweep, fixed values first, grid values overriding them.

    Raises SpecError for structural problems (empty axes, a key set twice in one cell, more
    than MAX_TRIALS cells — counted before anything is expanded).
    Cells are not yet deduplicated: identity is decided after validation fills defaults.
    """
    total = count(grid, literal_keys) if grid else 1
    if total > MAX_TRIALS:
        shown = f"{total:,}" if total < 10**30 else "more than 10^30"
        raise SpecError(
            [
                FieldError(
                    "grid",
                    f"expands to {shown} trials, more than {MAX_TRIALS:,}",
                    hint="split the study into several sweep files, or fix the axis that multiplies",
                )
            ]
        )
    errors: list[FieldError] = []
    base = Cell({str(k): v for k, v in fixed.items()}, {str(k): f"fixed.{k}" for k in fixed})
    cells = _expand(grid, "grid", literal_keys, errors) if grid else [Cell()]
    if errors:
        raise SpecError(errors)
    return [Cell({**base.params, **cell.params}, {**base.sources, **cell.sources}) for cell in cells]
