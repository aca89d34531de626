"""Errors a user can act on: every problem names the field, the bad value and what would be accepted."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sweeps.secrets import redact, scrub

#: characters of a user's value echoed in a message
SHORT = 60
#: items of a list or mapping echoed in a message
MAX_ITEMS_SHOWN = 8
#: longest value a did-you-mean is computed for
MAX_GUESSED = 100
#: longest part of a rendered problem (path, message, accepted values, hint)
MAX_PART = 2000


def suggest(bad: object, candidates: Iterable[object]) -> object | None:
    """The accepted value closest to ``bad``, or None when nothing is plausibly meant.

    difflib catches typos (``cach_size`` → ``cache_size``); the containment check catches
    decorated values such as ``'int4'`` for ``4`` or ``'maxpooling'`` for ``maxpool``.
    """
    options = [c for c in candidates if c is not None]
    if not options or not isinstance(bad, (str, int, float)) or isinstance(bad, bool):
        return None
    text = str(bad).strip().lower() if not isinstance(bad, int) or bad.bit_length() < 64 else ""
    if not text or len(text) > MAX_GUESSED:
        return None  # difflib is quadratic: a pasted paragraph is not a typo
    by_text = {str(c).lower(): c for c in options}
    close = difflib.get_close_matches(text, list(by_text), n=1, cutoff=0.6)
    if close:
        return by_text[close[0]]
    contained = [c for t, c in by_text.items() if t and (t in text or (len(text) >= 3 and text in t))]
    if len(contained) == 1:
        return contained[0]
    return None


def shorten(text: str, limit: int = SHORT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: user input is echoed, never dumped."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def describe(value: object, limit: int = SHORT) -> str:
    """A value as the user wrote it in YAML terms (strings quoted, None as null), at most about
    ``limit`` characters: only as much of a huge list or mapping is looked at as is shown."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(shorten(value, limit))
    if isinstance(value, int):
        return str(value) if value.bit_length() < 200 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, repr(value))
    if isinstance(value, (list, tuple, Mapping)):
        return _describe_collection(redact(value), limit)
    return shorten(str(value), limit)


def _describe_collection(value: list | tuple | Mapping, limit: int) -> str:
    is_mapping = isinstance(value, Mapping)
    items = iter(value.items()) if is_mapping else iter(value)
    parts: list[str] = []
    used = 2
    for index, item in enumerate(items):
        if used >= limit or index >= MAX_ITEMS_SHOWN:
            parts.append(f"… {len(value) - index} more")
            break
        room = max(limit - used, 8)
        text = f"{shorten(str(item[0]), room)}: {describe(item[1], room)}" if is_mapping else describe(item, room)
        parts.append(text)
        used += len(text) + 2
    return ("{%s}" if is_mapping else "[%s]") % ", ".join(parts)


@dataclass(frozen=True)
class FieldError:
    """One problem at one place in the sweep file."""

    path: str
    message: str
    value: object = None
    accepted: str | None = None
    hint: str | None = None
    #: the value names a registered part (a task, a technique): that part's own parameters
    #: cannot be judged until the name is right
    names_part: bool = False

    def render(self) -> str:
        return f"{shorten(self.path, 200)}: {self.text()}"

    def text(self) -> str:
        """The problem without its place, for a schema's ``check()`` that reports it at a field of its own."""
        text = shorten(self.message, MAX_PART)
        if self.accepted:
            text += f"; accepted: {shorten(self.accepted, MAX_PART)}"
        if self.hint:
            text += f" ({shorten(self.hint, 300)})"
        return text


UNKNOWN_KEY = "unknown key"
_AXIS_ITEM = re.compile(r"\[\d+\]$")


def merge(errors: Sequence[FieldError]) -> list[FieldError]:
    """One error per place and problem: the same bad key in many trials is reported once,
    with the keys accepted by any of those trials (and a misspelt axis once, at its first value)."""
    merged: dict[tuple[str, str], FieldError] = {}
    for error in errors:
        where = _AXIS_ITEM.sub("", error.path) if error.message.startswith(UNKNOWN_KEY) else error.path
        slot = (where, error.message)
        first = merged.get(slot)
        if first is None:
            merged[slot] = error
        elif error.accepted and first.accepted and error.accepted != first.accepted:
            union = sorted(set(first.accepted.split(", ")) | set(error.accepted.split(", ")))
            merged[slot] = FieldError(
                first.path, first.message, first.value, ", ".join(union), first.hint or error.hint
            )
    return list(merged.values())


class SpecError(Exception):
    """The sweep file (or its overrides) is invalid; raised before any work starts."""

    def __init__(self, errors: Sequence[FieldError], source: str | None = None):
        self.errors = merge(errors)
        self.source = source
        super().__init__(self.render())

    def __reduce__(self) -> tuple:
        """Rebuilt from its problems, so an error raised in a Ray worker reaches the driver intact."""
        return type(self), (self.errors, self.source)

    def render(self) -> str:
        where = f" in {self.source}" if self.source else ""
        lines = [f"{len(self.errors)} problem(s){where}:"]
        lines += [f"  - {e.render()}" for e in self.errors]
        return scrub("\n".join(lines))  # a secret value never reaches the terminal, whatever the message


def unknown_key(path: str, key: str, accepted: Sequence[str]) -> FieldError:
    """The error for a key that the schema does not define, with a did-you-mean."""
    guess = suggest(key, accepted)
    return FieldError(
        path=path,
        message=f"{UNKNOWN_KEY} {key!r}",
        value=key,
        accepted=", ".join(sorted(accepted)),
        hint=f"did you mean {guess!r}?" if guess is not None else None,
    )


def bad_choice(path: str, value: object, choices: Sequence[object]) -> FieldError:
    """The error for a value outside a fixed set of choices, with a did-you-mean."""
    guess = suggest(value, choices)
    return FieldError(
        path=path,
        message=f"{describe(value)} is not accepted",
        value=value,
        accepted=", ".join(describe(c) for c in choices),
        hint=f"did you mean {describe(guess)}?" if guess is not None else None,
    )
