"""Sizing prompts to ``context_length``: the largest number of units (filler sentences, key-value
pairs, passages, demonstrations) whose fully rendered prompt still fits.

Token counts come from the real renderer (chat template included), so the only assumption is
that more units never make the prompt shorter. Consecutive samples of a task need almost the
same count, so the search starts from the previous answer and gallops away from it: a few
renderings per sample instead of a full binary search each time.
"""

from __future__ import annotations

from collections.abc import Callable

#: a guard against a renderer whose length never grows (no task needs this many units)
MAX_UNITS = 10_000_000


def largest_fitting(fits: Callable[[int], bool], hint: int = 1, upper: int = MAX_UNITS) -> int:
    """The largest ``n`` in ``[0, upper]`` with ``fits(n)``, for ``fits`` true up to some n and false after.

    Returns -1 when not even ``fits(0)`` holds. ``hint`` is where the search starts.
    """
    hint = max(0, min(hint, upper))
    if fits(hint):
        low, step = hint, 1
        while low + step <= upper and fits(low + step):
            low, step = low + step, step * 2
        high = min(low + step, upper + 1)  # known not to fit, or past the upper bound
    else:
        high, step = hint, 1
        while high - step >= 0 and not fits(high - step):
            high, step = high - step, step * 2
        if high - step < 0:
            if high == 0 or not fits(0):
                return -1
            low = 0
        else:
            low = high - step
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def too_short(context_length: int, tokens_without_units: int, what: str) -> ValueError:
    """The error for a ``context_length`` that cannot hold even the question and template."""
    return ValueError(
        f"context_length {context_length} is too short for the question and chat template "
        f"({tokens_without_units} tokens without any {what})"
    )


class Fitter:
    """Fits samples one after the other, each search starting from the previous sample's count."""

    def __init__(self, context_length: int, what: str):
        self.context_length = context_length
        self.what = what
        self.hint = 1

    def fit(self, tokens: Callable[[int], int], upper: int = MAX_UNITS) -> int:
        """The most units (at most ``upper``) whose prompt, ``tokens(n)`` long, fits; ValueError if none does."""
        count = largest_fitting(lambda n: tokens(n) <= self.context_length, self.hint, upper)
        if count < 0:
            raise too_short(self.context_length, tokens(0), self.what)
        self.hint = max(count, 1)
        return count
