"""Reading a sweep file's YAML: strict where PyYAML is lenient, bounded where it could blow up.

PyYAML silently keeps the last of two equal keys, reads ``on``/``off``/``yes``/``no`` as
booleans (YAML 1.1, so ``chat_template: off`` becomes ``false``), recurses once per level of
nesting, and expands aliases without limit (a "billion laughs" file is a few hundred bytes).
Here booleans are only ``true``/``false`` (YAML 1.2), dates stay text, and every duplicate
key, runaway alias and absurd nesting is an error with its line, before anything is built.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from sweeps.errors import FieldError, SpecError, shorten

#: deeper nesting than this is never a sweep file (and would exhaust Python's recursion)
MAX_DEPTH = 64
#: values written in the file; a real sweep file has hundreds (PyYAML reads ~10,000 a second)
MAX_WRITTEN = 20_000
#: values after expanding aliases
MAX_VALUES = 100_000
#: larger files take PyYAML longer to read than a bad file may take to be refused
MAX_CHARACTERS = 1_000_000

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


class _TooLarge(Exception):
    """Composing stopped: the file nests too deep or holds too many values to be a sweep file."""

    def __init__(self, mark: yaml.Mark | None, message: str):
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no timestamps, and a bound on nesting while composing."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _depth = 0
    _count = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._count += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooLarge(self.peek_event().start_mark, f"nests more than {MAX_DEPTH} levels deep")
            if self._count > MAX_WRITTEN:
                raise _TooLarge(self.peek_event().start_mark, f"holds more than {MAX_WRITTEN:,} values")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1 if mark is not None else 0


def _key_text(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"(a {node.id} at line {_line(node)})"


def _duplicates(root: yaml.Node) -> list[FieldError]:
    """Every mapping key written twice in the same mapping, at the path of the second one."""
    errors: list[FieldError] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if key.tag == _MERGE:
                    continue
                name = _key_text(key)
                where = f"{path}.{name}" if path else name
                slot = (key.tag, name) if isinstance(key, yaml.ScalarNode) else (key.tag, str(id(key)))
                if slot in first:
                    errors.append(
                        FieldError(
                            shorten(where, 120),
                            f"key {shorten(name)!r} appears twice in one mapping "
                            f"(lines {first[slot]} and {_line(key)}); YAML would silently keep the second",
                            hint="keep one",
                        )
                    )
                else:
                    first[slot] = _line(key)
                stack.append((value, where))
    return errors


def _expanded_size(root: yaml.Node) -> tuple[int, int, FieldError | None]:
    """How many values and how deep the document is once every alias is copied out.

    Walks each distinct node once (aliases share nodes), so a billion-laughs file is measured
    in microseconds; an alias inside the value it names is reported instead of followed.
    """
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            active.discard(id(node))
            sub = [sizes[id(c)] for c in children]
            sizes[id(node)] = (1 + sum(s for s, _ in sub), 1 + max((d for _, d in sub), default=0))
            continue
        if id(node) in sizes:
            continue
        if id(node) in active:
            return 0, 0, FieldError(f"line {_line(node)}", "an alias refers to the value that contains it")
        active.add(id(node))
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in sizes]
    size, depth = sizes[id(root)]
    return size, depth, None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _syntax_error(exc: yaml.YAMLError, text: str) -> FieldError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return FieldError(f"line {line}", f"character {exc.character!r} is not allowed in YAML")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
    message = f"not valid YAML: {shorten(problem, 160)}"
    if context:
        message += f" ({shorten(context, 80)})"
    return FieldError(where, message)


def load_yaml(text: str, where: str | None = None) -> Any:
    """The value of one YAML document, or a SpecError listing each problem with its line.

    ``where`` prefixes each problem's location (``--set fixed.samples`` for an override).
    """
    try:
        return _load(text)
    except SpecError as exc:
        if not where:
            raise
        errors = [FieldError(f"{where} ({e.path})", e.message, e.value, e.accepted, e.hint) for e in exc.errors]
        raise SpecError(errors) from None


def _load(text: str) -> Any:
    if len(text) > MAX_CHARACTERS:
        raise SpecError(
            [FieldError("(file)", f"has {len(text):,} characters; a sweep file has at most {MAX_CHARACTERS:,}")]
        )
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except _TooLarge as exc:
        raise SpecError([FieldError(f"line {_line(exc.mark)}", f"the file {exc.message}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([_syntax_error(exc, text)]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError([FieldError("(file)", f"a value cannot be read: {shorten(str(exc), 160)}")]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_nodes(node: yaml.Node) -> None:
    """Refuse runaway aliases, nesting and duplicate keys before any value is built."""
    size, depth, loop = _expanded_size(node)
    if loop is not None:
        raise SpecError([loop])
    if size > MAX_VALUES:
        raise SpecError(
            [
                FieldError(
                    "(file)",
                    f"expands to {size:,} values once its aliases are copied out, more than {MAX_VALUES:,}",
                    hint="write the values out, or use fewer aliases of aliases",
                )
            ]
        )
    if depth > MAX_DEPTH:
        raise SpecError(
            [FieldError("(file)", f"nests {depth} levels deep once its aliases are copied out, more than {MAX_DEPTH}")]
        )
    duplicates = _duplicates(node)
    if duplicates:
        raise SpecError(duplicates)
