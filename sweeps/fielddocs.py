"""What each parameter means, read from the one place it is written: a ``#:`` comment above its field.

Every parameter of a workload, technique, task or reward is a dataclass field, documented by
the ``#:`` comment lines directly above it (the convention Sphinx's autodoc reads too)::

    #: tokens kept per layer, window included
    cache_size: int = 1024

`sweeps list` shows that text next to the field's type and default, and a test holds every
registered part to it, so a parameter cannot be added without saying what it does.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from sweeps.errors import describe

DOC_MARK = "#:"


@dataclass(frozen=True)
class Parameter:
    """One parameter as `sweeps list` shows it: YAML-style type and default, and its one-line help."""

    name: str
    type: str
    default: str
    help: str


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's ``#:`` comment, joined into one line ('' for a field without one).

    A field inherited from a base class keeps the comment written there.
    """
    if not dataclasses.is_dataclass(cls):
        return {}
    written: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        written.update(_own_docs(klass))
    return {f.name: written.get(f.name, "") for f in dataclasses.fields(cls)}


def parameters(part: object) -> list[Parameter]:
    """The parameters of a part (a dataclass; anything else has none), in field order."""
    if not isinstance(part, type) or not dataclasses.is_dataclass(part):
        return []
    try:
        hints: dict[str, Any] = typing.get_type_hints(part)
    except Exception:  # an annotation that cannot be evaluated here is shown as written
        hints = {}
    docs = field_docs(part)
    return [
        Parameter(f.name, type_text(hints.get(f.name, f.type)), _default(f), plain(docs[f.name]))
        for f in dataclasses.fields(part)
    ]


def summary(part: object) -> str:
    """The first paragraph of a part's docstring, on one line."""
    doc = inspect.getdoc(part) or ""
    return plain(" ".join(doc.split("\n\n", 1)[0].split()))


def plain(text: str) -> str:
    """Text as a terminal shows it: reStructuredText's ``literal`` marks dropped."""
    return text.replace("``", "")


def type_text(annotation: object) -> str:
    """A type in the sweep file's terms: ``int | null``, ``'avgpool' | 'maxpool'``, ``list[float]``."""
    if isinstance(annotation, str):
        return annotation
    if annotation is None or annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if annotation is Ellipsis:
        return "..."
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(describe(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_text(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return describe(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return describe(f.default_factory())
    return "required"


@cache
def _own_docs(klass: type) -> dict[str, str]:
    """The ``#:`` comments above the annotated names a class body declares itself."""
    if "__annotations__" not in vars(klass):
        return {}
    try:
        lines, _ = inspect.getsourcelines(klass)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):  # built at run time, or no source shipped
        return {}
    body = next((node.body for node in tree.body if isinstance(node, ast.ClassDef)), [])
    docs = {}
    for statement in body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            comment: list[str] = []
            above = statement.lineno - 2  # 0-based index of the line above the field
            while above >= 0 and lines[above].strip().startswith(DOC_MARK):
                comment.insert(0, lines[above].strip()[len(DOC_MARK) :].strip())
                above -= 1
            docs[statement.target.id] = " ".join(comment)
    return docs
