"""Local filler text for the synthetic tasks, and placing needles in it at chosen depths.

Nothing is downloaded: RULER's ``repeat`` haystack is one sentence group repeated, ``prose``
is varied sentences generated from small word lists (a stand-in for RULER's essay haystack
with the same property that matters: the filler is not trivially compressible), and
``needles`` fills the context with distractor needles (RULER's multi-key haystack). Every
haystack is deterministic in its seed and prefix-stable: the first n units never change when
more are asked for, so sizing by search is consistent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from evaluators.tasks.passkey import FILLER

REPEAT = FILLER.strip()
T = TypeVar("T")

# fmt: off
ADJECTIVES = (
    "amber", "brisk", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly",
    "keen", "lively", "mellow", "narrow", "olive", "proud", "quiet", "rapid", "silver", "tidy",
    "urban", "vivid", "woolen", "young", "zealous", "bold", "clever", "distant", "early", "fancy",
    "golden", "hasty", "idle", "jagged", "kind", "lucky", "modest", "noble", "odd", "plain",
    "rare", "shy", "tall", "upper", "vast", "wild", "ancient", "bright", "crisp", "deep",
)
NOUNS = (
    "anchor", "badger", "candle", "dragon", "engine", "falcon", "garden", "harbor", "island", "jacket",
    "kettle", "ladder", "meadow", "needle", "orchard", "pepper", "quarry", "river", "saddle", "tunnel",
    "umbrella", "valley", "window", "yarrow", "zephyr", "bridge", "canyon", "desert", "ember", "forest",
    "glacier", "hammer", "igloo", "jungle", "lantern", "mirror", "nectar", "otter", "pillar", "rocket",
    "signal", "thistle", "violin", "walnut", "basket", "cellar", "dolphin", "feather", "granite", "helmet",
)
_VERBS = ("watched", "carried", "painted", "followed", "measured", "repaired", "visited", "described", "found")
_PLACES = ("by the old mill", "near the station", "across the square", "along the coast", "in the small town",
           "behind the library", "at the edge of the field", "under the bridge", "on the hill")
_CLOSERS = ("before noon", "after the rain", "every winter", "for a long time", "without a word",
            "with great care", "late in the evening", "once again", "at dawn")
# fmt: on


def key_word(rng: random.Random) -> str:
    """A RULER-style word key such as ``silver-lantern``."""
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def _prose_sentence(rng: random.Random) -> str:
    return (
        f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(_VERBS)} the {rng.choice(ADJECTIVES)} "
        f"{rng.choice(NOUNS)} {rng.choice(_PLACES)} {rng.choice(_CLOSERS)}."
    )


class Units(Generic[T]):
    """Units generated on demand; ``units(n)`` is always a prefix of ``units(n + 1)``."""

    def __init__(self, make: Callable[[random.Random], T], seed: str):
        self._make = make
        self._rng = random.Random(seed)
        self._cache: list[T] = []

    def __call__(self, count: int) -> list[T]:
        while len(self._cache) < count:
            self._cache.append(self._make(self._rng))
        return self._cache[:count]


def haystack_units(kind: str, seed: str, needle: Callable[[random.Random], str] | None = None) -> Units[str]:
    """The unit source of a haystack kind: ``repeat``, ``prose`` or ``needles`` (needs ``needle``)."""
    if kind == "repeat":
        return Units(lambda _: REPEAT, seed)
    if kind == "prose":
        return Units(_prose_sentence, seed)
    if kind == "needles":
        if needle is None:
            raise ValueError("the needles haystack needs a needle maker")
        return Units(needle, seed)
    raise ValueError(f"unknown haystack {kind!r}")


def weave(units: Sequence[str], inserts: Sequence[tuple[float, str]]) -> str:
    """Join ``units`` with each insert placed at its depth (0 = before all units, 1 = after all).

    Inserts at the same position keep their given order.
    """
    slots: dict[int, list[str]] = {}
    for depth, text in inserts:
        slots.setdefault(round(depth * len(units)), []).append(text)
    parts: list[str] = []
    for index in range(len(units) + 1):
        parts.extend(slots.get(index, []))
        if index < len(units):
            parts.append(units[index])
    return " ".join(parts)


def other_depths(count: int, rng: random.Random, avoid: float) -> list[float]:
    """Depths for ``count`` distractor needles: RULER's grid of 40 even depths, without the asked one's."""
    grid = [i / 39 for i in range(40) if abs(i / 39 - avoid) > 1 / 78]
    if count <= len(grid):
        return rng.sample(grid, count)
    return [rng.choice(grid) for _ in range(count)]
