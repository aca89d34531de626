"""Reading task data files with errors that say which file, which line and which field is wrong.

A benchmark file with a renamed field otherwise fails deep inside prompt building with a bare
``KeyError``; here it fails at load time with ``file.jsonl, line 12: missing field 'answers'``.
"""

from __future__ import annotations

import codecs
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TYPE_WORDS = {str: "a string", list: "a list", dict: "an object", int: "an integer", bool: "true or false"}


@dataclass(frozen=True)
class Row:
    """One record of a data file, with where it came from (for error messages)."""

    data: dict[str, Any]
    path: Path
    line: int
    #: how an error names the row: "line 12" in JSON Lines files, "record 3 (line 40)" in JSON lists
    label: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}, {self.label or f'line {self.line}'}"

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def get(self, field: str, kind: type | tuple[type, ...] | None = None, default: Any = ...) -> Any:
        """The value of ``field``; a clear ValueError when it is absent (and no default) or of the wrong type."""
        if field not in self.data or self.data[field] is None:
            if default is not ...:
                return default
            raise self.error(f"missing field {field!r}")
        value = self.data[field]
        if kind is not None and not _is(value, kind):
            raise self.error(f"field {field!r} must be {_words(kind)}, got {type(value).__name__}")
        return value

    def first(self, fields: Sequence[str], kind: type | tuple[type, ...] | None = None) -> Any:
        """The value of the first of ``fields`` present (for formats that name a field in several ways)."""
        for field in fields:
            if field in self.data and self.data[field] is not None:
                return self.get(field, kind)
        raise self.error(f"missing field {' or '.join(repr(f) for f in fields)}")


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not a number here
    return isinstance(value, kinds)


def _words(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    return path


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file, numbered from 1; a ValueError naming the line where a byte is not UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise ValueError(f"{path}: UTF-16 text; save it as UTF-8")
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start]
                raise ValueError(
                    f"{path}, line {number}: byte 0x{byte:02x} is not UTF-8 text; save it as UTF-8"
                ) from None


def read_jsonl(path: Path, what: str = "data file") -> list[Row]:
    """Every non-blank line of a JSON Lines file as a :class:`Row` (line numbers from 1)."""
    require_file(path, what)
    rows = []
    for number, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(data).__name__}")
        rows.append(Row(data, path, number))
    if not rows:
        raise ValueError(f"{path}: no records")
    return rows


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _records_with_lines(text: str) -> list[tuple[Any, int]]:
    """The items of a JSON array with the line each starts on; ValueError when ``text`` is not one."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise ValueError("expected a JSON list of records")
    items: list[tuple[Any, int]] = []
    position = _skip_space(text, position + 1)
    while not text.startswith("]", position):
        if items:
            if not text.startswith(",", position):
                raise ValueError(f"expected ',' or ']' at line {_line_at(text, position)}")
            position = _skip_space(text, position + 1)
        start = position
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        items.append((item, _line_at(text, start)))
        position = _skip_space(text, position)
    return items


def read_json_list(path: Path, what: str = "data file") -> list[Row]:
    """The records of a JSON file holding one list of objects, each with the line it starts on."""
    require_file(path, what)
    text = "".join(line for _, line in utf8_lines(path))
    try:
        records = _records_with_lines(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not records:
        raise ValueError(f"{path}: no records")
    rows = []
    for index, (record, line) in enumerate(records, start=1):
        row = Row(record if isinstance(record, dict) else {}, path, line, f"record {index} (line {line})")
        if not isinstance(record, dict):
            raise row.error(f"expected a JSON object, got {type(record).__name__}")
        rows.append(row)
    return rows


def pick(items: Sequence[T], count: int, seed: int, salt: str) -> list[T]:
    """``count`` items (all when there are fewer) in an order fixed by ``seed``."""
    order = list(range(len(items)))
    random.Random(f"{salt}:{seed}").shuffle(order)
    return [items[i] for i in order[:count]]
