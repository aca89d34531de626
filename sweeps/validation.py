"""Turn parameter dicts into typed config objects, with errors that point into the sweep file.

Schemas are plain dataclasses (one per technique, task, workload — as kvpress does for
presses) or pydantic models. Pydantic checks the types; this module translates its
errors into :class:`FieldError` with the file location of the offending value, the
accepted choices and a did-you-mean. Cross-field rules live in an optional ``check()``
method on the schema that returns ``(field, message)`` pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar

import pydantic
from pydantic_core import to_jsonable_python

from sweeps.errors import FieldError, SpecError, bad_choice, describe, shorten, suggest, unknown_key
from sweeps.secrets import REDACTED, Hidden, is_secret, redact
from sweeps.strict import number_problems

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
    return _hints(schema).get(name)


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    """A schema's resolved annotations (resolving them evaluates strings: costly once per trial)."""
    return typing.get_type_hints(schema)


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


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "true/false")}
_WORDS |= {str: ("a string", "strings"), type(None): ("null", "nulls"), Any: ("any value", "values")}


def _type_words(annotation: Any, plural: bool = False) -> str:
    """A field's type as the sweep file's reader says it: ``a string or a list of strings``."""
    if annotation in _WORDS:
        return _WORDS[annotation][plural]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_words(args[0], plural)
    if origin is Literal:
        return ", ".join(describe(c) for c in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_words(a, plural) for a in args)
    if origin in (list, tuple, set, frozenset):
        words = f"a list of {_type_words(args[0], True)}" if args else "a list"
        return words.replace("a list", "lists", 1) if plural else words
    if origin is dict or annotation is dict:
        words = f"a mapping of names to {_type_words(args[-1], True)}" if args else "a mapping"
        return words.replace("a mapping", "mappings", 1) if plural else words
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or issubclass(annotation, pydantic.BaseModel)
    ):
        return f"a mapping with keys {', '.join(field_names(annotation))}"
    return getattr(annotation, "__name__", str(annotation))


def _annotation_at(schema: type, loc: tuple) -> Any:
    """The annotation of the field ``loc`` points at (``('scheduler', 'type')`` → ``Literal['asha']``)."""
    if not loc:
        return None
    parent = _schema_at(schema, tuple(loc[:-1])) if len(loc) > 1 else schema
    if parent is None or isinstance(loc[-1], int):
        return None
    return field_annotation(parent, str(loc[-1]))


def _is_union(annotation: Any) -> bool:
    """Whether pydantic validates this field against several members (tagging each member's errors)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    return len([a for a in typing.get_args(annotation) if a is not type(None)]) > 1


def _render_loc(sources: Mapping[str, str], loc: tuple) -> str:
    top = str(loc[0]) if loc else ""
    path = sources.get(top, top or "?")
    return path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])


def _translate(schema: type, err: Mapping[str, Any], data: Mapping, sources: Mapping[str, str]) -> FieldError:
    loc = err.get("loc") or ()
    top = str(loc[0]) if loc else ""
    if any(is_secret(str(part)) for part in loc):
        err, data = _hide_secret(err), {**data, top: Hidden(data.get(top))}
    elif "input" in err:  # a mapping given where it does not belong may still hold a secret
        err = {**err, "input": redact(err["input"])}
    kind = err.get("type", "")
    if loc and loc[-1] == "[key]":
        key = err.get("input")
        return FieldError(_render_loc(sources, loc[:-2]), f"key {describe(key)} is not a name", key, "names (text)")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        parent = _schema_at(schema, tuple(loc[:-1]))
        accepted = field_names(parent) if parent is not None else []
        return unknown_key(_render_loc(sources, loc), str(loc[-1]), accepted)
    if _is_union(field_annotation(schema, top)):
        # one error per member of ``str | list[str]``: say once what the field accepts
        loc = loc[:1]
        value = data.get(top, err.get("input"))
        words = _type_words(field_annotation(schema, top))
        return FieldError(_render_loc(sources, loc), f"{describe(value)} is not accepted", value, words)
    path = _render_loc(sources, loc)
    value = err.get("input")
    annotation = _annotation_at(schema, tuple(loc))
    choices = literal_choices(annotation)
    ctx = err.get("ctx") or {}
    if kind == "literal_error" or (choices is not None and kind.endswith("_type")):
        return bad_choice(path, value, choices or [])
    if kind == "missing":
        name = str(loc[-1]) if loc else "?"
        return FieldError(_render_loc(sources, loc[:-1]), f"missing required key {name!r}", hint=f"add {name}: ...")
    if kind in _BOUNDS:
        return FieldError(
            path, f"{describe(value)} is too {_BOUNDS[kind][0]}", value, f"{_BOUNDS[kind][1]} {_limit(ctx)}"
        )
    if kind == "value_error":
        return FieldError(path, str(ctx.get("error", err.get("msg", "invalid value"))), value)
    words = _type_words(annotation)
    if kind in _NOT_A:
        return FieldError(path, f"{describe(value)} is not {_NOT_A[kind]}", value, words)
    message = shorten(str(err.get("msg", "invalid value")), 200)
    return FieldError(path, f"{describe(value)}: {message}", value, words)


#: pydantic's bound errors: (what the value is, how the bound reads)
_BOUNDS = {
    "greater_than": ("small", "greater than"),
    "greater_than_equal": ("small", "at least"),
    "less_than": ("large", "less than"),
    "less_than_equal": ("large", "at most"),
    "too_short": ("short", "at least"),
    "too_long": ("long", "at most"),
    "finite_number": ("large", "a finite number"),
}
#: pydantic's type errors, as what the value is not
_NOT_A = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
    "none_required": "null",
}


def _limit(ctx: Mapping[str, Any]) -> str:
    for name in ("gt", "ge", "lt", "le", "min_length", "max_length"):
        if name in ctx:
            return describe(ctx[name])
    return ""


def _hide_secret(err: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error about a secret, with its input (and any echo of it) replaced by a description."""
    bad = err.get("input")
    message = str(err.get("msg", "invalid value"))
    if isinstance(bad, str) and bad:
        message = message.replace(bad, REDACTED)
    return {**err, "input": Hidden(bad), "msg": message}


def build(
    schema: type[T],
    data: Mapping[str, object],
    sources: Mapping[str, str] | None = None,
    required_where: str = "fixed or grid",
    misspelt: Collection[str] = (),
) -> tuple[T | None, list[FieldError]]:
    """Validate ``data`` against ``schema``; return the object or the list of problems.

    Unknown keys, missing required keys, type errors and the schema's own ``check()``
    rules are all collected, so the user sees every problem of the file at once. A required
    key that an unknown key is a misspelling of (or one named in ``misspelt``) is not reported
    missing as well: the did-you-mean says it.
    """
    sources = sources or {}
    allowed = field_names(schema)
    unknown = [k for k in data if k not in allowed]
    errors = [unknown_key(sources.get(k, k), k, allowed) for k in unknown]
    missing = [name for name in required_names(schema) if name not in data]
    explained = set(misspelt) | {suggest(k, allowed) for k in unknown}
    errors += [
        FieldError(required_where, f"missing required parameter {name!r}", hint=f"add {name}: ...")
        for name in missing
        if name not in explained
    ]
    known = {k: v for k, v in data.items() if k in allowed}
    strict = [p for k, v in known.items() for p in _number_problems(schema, k, v, sources)]
    errors += strict
    try:
        obj = _adapter(schema).validate_python(known)
    except pydantic.ValidationError as exc:
        reported = {e.path for e in errors}
        details = exc.errors()
        for e in details:
            if e.get("type") == "missing" and _misspelt_nested(schema, e, details):
                continue
            top = str((e.get("loc") or ("",))[0])
            if e.get("type") == "missing" and top in missing:
                continue
            if any(s.path == sources.get(top, top) or s.path.startswith(sources.get(top, top) + "[") for s in strict):
                continue  # already said, in words, by the number check
            error = _translate(schema, e, data, sources)
            if error.path not in reported:  # one message per place: a union's members fail together
                reported.add(error.path)
                errors.append(error)
        return None, errors
    if errors:
        return None, errors
    errors = check_rules(obj, data, sources)
    return (None, errors) if errors else (obj, [])


def _misspelt_nested(schema: type, missing: Mapping[str, Any], details: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a nested key reported missing (``scheduler.metric``) was written misspelt beside it."""
    loc = tuple(missing.get("loc") or ())
    parent = _schema_at(schema, loc[:-1])
    if parent is None:
        return False
    names = field_names(parent)
    return any(
        e.get("type") == "extra_forbidden"
        and tuple(e.get("loc") or ())[:-1] == loc[:-1]
        and suggest(str(e["loc"][-1]), names) == loc[-1]
        for e in details
    )


@functools.cache
def _adapter(schema: type) -> pydantic.TypeAdapter:
    """One validator per schema: building it costs far more than validating one trial."""
    return pydantic.TypeAdapter(schema)


def _number_problems(schema: type, name: str, value: object, sources: Mapping[str, str]) -> list[FieldError]:
    problems = number_problems(field_annotation(schema, name), value, sources.get(name, name))
    if is_secret(name):
        return [FieldError(p.path, f"{Hidden(value)} is not accepted", Hidden(value), p.accepted) for p in problems]
    return problems


def check_rules(obj: object, data: Mapping[str, object], sources: Mapping[str, str]) -> list[FieldError]:
    """Run the schema's own ``check()``: ``(field, message)`` or ``(field, message, choices)``."""
    check = getattr(obj, "check", None)
    if not callable(check):
        return []
    errors = []
    try:
        problems = list(check())
    except Exception as exc:  # a rule that cannot cope with some odd value still gives a message
        return [FieldError("(parameters)", f"could not be checked: {type(exc).__name__}: {shorten(str(exc), 200)}")]
    for problem in problems:
        name, message, *rest = problem
        path = sources.get(name, name)
        value = data.get(name, getattr(obj, name, None))
        if is_secret(str(name)):
            value = Hidden(value)
        if rest:
            errors.append(dataclasses.replace(bad_choice(path, value, list(rest[0])), names_part=True))
        else:
            errors.append(FieldError(path, message, value if is_secret(str(name)) else redact(data.get(name))))
    return errors


def validate_params(
    schemas: Sequence[type],
    params: Mapping[str, object],
    sources: Mapping[str, str],
    memo: dict | None = None,
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
    guesses = {k: suggest(k, owners) for k in params if k not in owners}
    misspelt = sorted({str(g) for g in guesses.values() if g is not None and g not in params})
    errors: list[FieldError] = []
    full: dict[str, object] = {}
    canonical: dict[str, object] = {}
    for schema in schemas:
        part = {k: v for k, v in params.items() if owners.get(k) is schema}
        every, changed, problems = _validated_part(schema, part, sources, memo, misspelt)
        errors += problems
        full.update(every)
        canonical.update(changed)
    errors = _unknown_keys(guesses, errors, misspelt, sorted(owners), sources) + errors
    if errors:
        raise SpecError(errors)
    return full, canonical


def _unknown_keys(
    guesses: Mapping[str, object],
    errors: list[FieldError],
    misspelt: Sequence[str],
    accepted: Sequence[str],
    sources: Mapping[str, str],
) -> list[FieldError]:
    """The unknown-key errors worth showing beside ``errors``, the cell's other problems.

    Which schemas apply depends on values such as ``task`` and ``technique``. When one of those
    is wrong, missing or misspelt, the parameters of the part it names look unknown although
    they are not: then only the likely typos (keys with a did-you-mean) are reported, and
    nothing beside a misnamed part (``snapkvv``), which says it all.
    """
    if any(e.names_part for e in errors):
        return []
    incomplete = bool(errors or misspelt)
    return [
        unknown_key(sources.get(k, k), k, accepted)
        for k, guess in guesses.items()
        if guess is not None or not incomplete
    ]


def _validated_part(
    schema: type,
    part: Mapping[str, object],
    sources: Mapping[str, str],
    memo: dict | None,
    misspelt: Sequence[str] = (),
) -> tuple[dict[str, object], dict[str, object], list[FieldError]]:
    """All fields, non-default fields and problems of one schema's share of a trial, from ``memo``
    when an equal share (same values from the same places) was validated before."""
    key = None
    if memo is not None:
        try:
            key = (schema, json.dumps([part, [sources.get(k) for k in part], misspelt], sort_keys=True, default=repr))
        except (TypeError, ValueError, RecursionError):
            key = None  # not canonically writable (mixed key types): validate it afresh
    if key is not None and key in memo:
        every, changed, problems = memo[key]
        return dict(every), dict(changed), problems
    obj, problems = build(schema, part, sources, misspelt=misspelt)
    every = all_items(obj) if obj is not None else {}
    changed = non_default_items(obj) if obj is not None else {}
    if key is not None:
        memo[key] = (every, changed, problems)
    return dict(every), dict(changed), problems


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
