"""Errors a user can act on: every problem names the field, the bad value and what would be accepted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def suggest(bad: object, candidates: Iterable[object]) -> object | None:
    """The accepted value closest to ``bad``, or None when nothing is plausibly meant.

    difflib catches typos (``cach_size`` → ``cache_size``); the containment check catches
    decorated values such as ``'int4'`` for ``4`` or ``'maxpooling'`` for ``maxpool``.
    """
    options = [c for c in candidates if c is not None]
    if not options:
        return None
    text = str(bad).strip().lower()
    by_text = {str(c).lower(): c for c in options}
    close = difflib.get_close_matches(text, list(by_text), n=1, cutoff=0.6)
    if close:
        return by_text[close[0]]
    contained = [c for t, c in by_text.items() if t and (t in text or (len(text) >= 3 and text in t))]
    if len(contained) == 1:
        return contained[0]
    return None


def describe(value: object) -> str:
    """A value as the user wrote it in YAML terms (strings quoted, None as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class FieldError:
    """One problem at one place in the sweep file."""

    path: str
    message: str
    value: object = None
    accepted: str | None = None
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.path}: {self.message}"
        if self.accepted:
            text += f"; accepted: {self.accepted}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def merge(errors: Sequence[FieldError]) -> list[FieldError]:
    """One error per place and problem: the same bad key in many trials is reported once,
    with the keys accepted by any of those trials."""
    merged: dict[tuple[str, str], FieldError] = {}
    for error in errors:
        slot = (error.path, error.message)
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

    def render(self) -> str:
        where = f" in {self.source}" if self.source else ""
        lines = [f"{len(self.errors)} problem(s){where}:"]
        lines += [f"  - {e.render()}" for e in self.errors]
        return "\n".join(lines)


def unknown_key(path: str, key: str, accepted: Sequence[str]) -> FieldError:
    """The error for a key that the schema does not define, with a did-you-mean."""
    guess = suggest(key, accepted)
    return FieldError(
        path=path,
        message=f"unknown key {key!r}",
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
