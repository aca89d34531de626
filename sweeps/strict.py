"""What pydantic's lax mode lets through but a sweep file never means: numbers that are not numbers.

Lax mode is kept on purpose (PyYAML reads ``1e-4`` as the string ``'1e-4'``, which must still
be a learning rate), so these are checked before it, for every field of every schema:
``true`` where an integer or a number is expected (``samples: true`` would be 1 trial sample),
NaN and infinity (``learning_rate: .nan`` trains nothing), and magnitudes no parameter has
(``samples: 1e30``, ``context_length: 1e15``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from sweeps.errors import FieldError, describe

#: the largest size any number in a sweep file may have (a 32-bit signed integer)
MAX_NUMBER = 2**31 - 1


def number_problems(annotation: Any, value: Any, path: str) -> list[FieldError]:
    """Problems of ``value`` against ``annotation`` that lax validation would not report."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return number_problems(typing.get_args(annotation)[0], value, path)
    if origin in (typing.Union, types.UnionType):
        return _union_problems(annotation, value, path)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
            accepted = ", ".join(describe(c) for c in choices)
            return [FieldError(path, f"{describe(value)} is not accepted", value, accepted)]
        return []
    if origin in (list, tuple, set, frozenset) and isinstance(value, list):
        item = (typing.get_args(annotation) or (Any,))[0]
        return [p for i, v in enumerate(value) for p in number_problems(item, v, f"{path}[{i}]")]
    if origin is dict and isinstance(value, Mapping):
        item = (typing.get_args(annotation) or (Any, Any))[-1]
        return [p for k, v in value.items() for p in number_problems(item, v, f"{path}.{k}")]
    if annotation is int:
        return _int_problems(value, path)
    if annotation is float:
        return _float_problems(value, path)
    if isinstance(annotation, type) and isinstance(value, Mapping) and _is_schema(annotation):
        hints = _hints(annotation)
        return [p for k, v in value.items() if k in hints for p in number_problems(hints[k], v, f"{path}.{k}")]
    return []


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _is_schema(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or issubclass(cls, pydantic.BaseModel)


def _union_problems(annotation: Any, value: Any, path: str) -> list[FieldError]:
    """Check against the one member of ``int | None``, ``float | list[float]``... that the value's shape picks."""
    if value is None:
        return []
    members = [m for m in typing.get_args(annotation) if m is not type(None)]
    if bool in members or Any in members:
        return []
    shaped = [m for m in members if _same_shape(m, value)]
    return number_problems(shaped[0], value, path) if len(shaped) == 1 else []


def _same_shape(annotation: Any, value: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if isinstance(value, list):
        return origin in (list, tuple, set, frozenset)
    if isinstance(value, Mapping):
        return origin is dict or (isinstance(origin, type) and _is_schema(origin))
    return origin in (int, float, Literal) or origin is typing.Annotated


def _int_problems(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, bool):
        return [FieldError(path, f"{describe(value)} is not an integer", value, "an integer")]
    if isinstance(value, float) and not math.isfinite(value):
        return [FieldError(path, f"{describe(value)} is not an integer", value, "an integer")]
    if isinstance(value, (int, float)):
        return _magnitude(value, path)
    return []


def _float_problems(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, bool):
        return [FieldError(path, f"{describe(value)} is not a number", value, "a number")]
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            return []  # not a number at all: the schema's own validation says so
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        if isinstance(number, float) and not math.isfinite(number):
            return [FieldError(path, f"{describe(value)} is not a finite number", value, "a finite number")]
        return _magnitude(number, path)
    return []


def _magnitude(number: float, path: str) -> list[FieldError]:
    if abs(number) <= MAX_NUMBER:
        return []
    return [
        FieldError(
            path,
            f"{describe(number)} is far out of range for any parameter",
            number,
            f"numbers from {-MAX_NUMBER:,} to {MAX_NUMBER:,}",
        )
    ]
