"""Turn parameter dicts into typed config objects, with errors that point into the sweep file.

Schemas are plain dataclasses (one per technique, task, workload — as kvpress does for
presses) or pydantic models. Pydantic checks the types; this module translates its
errors into :class:`FieldError` with the file location of the offending value, the
accepted choices and a did-you-mean. Cross-field rules live in an optional ``check()``
method on the schema that returns ``(field, message)`` pairs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import pydantic
from pydantic_core import to_jsonable_python

from sweeps.errors import FieldError, SpecError, bad_choice, describe, unknown_key

T = TypeVar("T")


def field_names(schema: type) -> list[str]:
    if dataclasses.is_dataclass(schema):
        return [f.name for f in dataclasses.fields(schema) if f.init]
    if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
        return list(schema.model_fields)
    raise TypeError(f"{schema!r} is neither a dataclass nor a pydantic model")


def required_names(schema: type) -> list[str]:
    if dataclasses.is_dataclass(schema):
        return [
            f.name
            for f in dataclasses.fields(schema)
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    return [name for name, info in schema.model_fields.items() if info.is_required()]


def field_annotation(schema: type, name: str) -> Any:
    hints = typing.get_type_hints(schema)
    return hints.get(name)


def literal_choices(annotation: Any) -> list[object] | None:
    """The allowed values when a field is a Literal (or Optional Literal), else None."""
    if annotation is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return list(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        choices: list[object] = []
        for arg in typing.get_args(annotation):
            if arg is type(None):
                choices.append(None)
                continue
            inner = literal_choices(arg)
            if inner is None:
                return None
            choices += inner
        return choices
    return None


def _schema_at(schema: type, loc: tuple) -> type | None:
    """The pydantic model or dataclass reached by following ``loc`` from ``schema``."""
    current: Any = schema
    for part in loc:
        if isinstance(part, int) or current is None:
            return None
        annotation = field_annotation(current, str(part)) if isinstance(current, type) else None
        candidates = [annotation, *typing.get_args(annotation)]
        current = next(
            (
                c
                for c in candidates
                if isinstance(c, type) and (dataclasses.is_dataclass(c) or issubclass(c, pydantic.BaseModel))
            ),
            None,
        )
    return current


def _type_words(annotation: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation in names:
        return names[annotation]
    return str(annotation).replace("typing.", "")


def _translate(schema: type, err: Mapping[str, Any], data: Mapping, sources: Mapping[str, str]) -> FieldError:
    loc = err.get("loc") or ()
    top = str(loc[0]) if loc else ""
    path = sources.get(top, top or "?")
    if len(loc) > 1:
        path += "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    value = data.get(top, err.get("input"))
    kind = err.get("type", "")
    annotation = field_annotation(schema, top) if top else None
    choices = literal_choices(annotation)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        parent = _schema_at(schema, tuple(loc[:-1]))
        accepted = field_names(parent) if parent is not None else []
        return unknown_key(path, str(loc[-1]), accepted)
    if kind == "literal_error" or (choices is not None and kind.endswith("_type")):
        return bad_choice(path, err.get("input", value), choices or [])
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return FieldError(path, f"{describe(err.get('input'))} is not an integer", err.get("input"), "an integer")
    if kind in ("float_parsing", "float_type"):
        return FieldError(path, f"{describe(err.get('input'))} is not a number", err.get("input"), "a number")
    if kind in ("bool_parsing", "bool_type"):
        return FieldError(path, f"{describe(err.get('input'))} is not true/false", err.get("input"), "true or false")
    message = err.get("msg", "invalid value")
    return FieldError(path, f"{describe(err.get('input'))}: {message}", err.get("input"), _type_words(annotation))


def build(
    schema: type[T],
    data: Mapping[str, object],
    sources: Mapping[str, str] | None = None,
    required_where: str = "fixed or grid",
) -> tuple[T | None, list[FieldError]]:
    """Validate ``data`` against ``schema``; return the object or the list of problems.

    Unknown keys, missing required keys, type errors and the schema's own ``check()``
    rules are all collected, so the user sees every problem of the file at once.
    """
    sources = sources or {}
    allowed = field_names(schema)
    errors = [unknown_key(sources.get(k, k), k, allowed) for k in data if k not in allowed]
    missing = [name for name in required_names(schema) if name not in data]
    errors += [
        FieldError(required_where, f"missing required parameter {name!r}", hint=f"add {name}: ...") for name in missing
    ]
    known = {k: v for k, v in data.items() if k in allowed}
    try:
        obj = pydantic.TypeAdapter(schema).validate_python(known)
    except pydantic.ValidationError as exc:
        errors += [
            _translate(schema, e, data, sources)
            for e in exc.errors()
            if not (e.get("type") == "missing" and e.get("loc", ("",))[0] in missing)
        ]
        return None, errors
    if errors:
        return None, errors
    errors = check_rules(obj, data, sources)
    return (None, errors) if errors else (obj, [])


def check_rules(obj: object, data: Mapping[str, object], sources: Mapping[str, str]) -> list[FieldError]:
    """Run the schema's own ``check()``: ``(field, message)`` or ``(field, message, choices)``."""
    check = getattr(obj, "check", None)
    if not callable(check):
        return []
    errors = []
    for problem in check():
        name, message, *rest = problem
        path = sources.get(name, name)
        if rest:
            errors.append(bad_choice(path, data.get(name, getattr(obj, name, None)), list(rest[0])))
        else:
            errors.append(FieldError(path, message, data.get(name)))
    return errors


def validate_params(
    schemas: Sequence[type], params: Mapping[str, object], sources: Mapping[str, str]
) -> tuple[dict[str, object], dict[str, object]]:
    """Validate flat trial params against several schemas that share them out between them.

    Each key goes to the schema that declares it; keys no schema declares are errors that
    list every accepted key. Returns the full effective config (defaults filled in) and the
    canonical params (defaults dropped), or raises SpecError with every problem.
    """
    owners: dict[str, type] = {}
    for schema in schemas:
        for name in field_names(schema):
            owners.setdefault(name, schema)
    errors = [unknown_key(sources.get(k, k), k, sorted(owners)) for k in params if k not in owners]
    full: dict[str, object] = {}
    canonical: dict[str, object] = {}
    for schema in schemas:
        part = {k: v for k, v in params.items() if owners.get(k) is schema}
        obj, problems = build(schema, part, sources)
        errors += problems
        if obj is not None:
            full.update(all_items(obj))
            canonical.update(non_default_items(obj))
    if errors:
        raise SpecError(errors)
    return full, canonical


def all_items(obj: object) -> dict[str, object]:
    """Every field of a validated object as JSON-ready values."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_jsonable_python(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot read fields of {type(obj).__name__}")


def non_default_items(obj: object) -> dict[str, object]:
    """The fields of a validated object that differ from their defaults: its canonical form.

    Dropping defaults makes ``pooling: avgpool`` and an omitted pooling the same trial, and
    keeps existing trial keys stable when a later version adds a parameter with a default.
    """
    out: dict[str, object] = {}
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            )
            if default is dataclasses.MISSING or value != default:
                out[f.name] = to_jsonable_python(value)
        return out
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(exclude_defaults=True, mode="json")
    raise TypeError(f"cannot canonicalize {type(obj).__name__}")
