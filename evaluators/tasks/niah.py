"""RULER-style needle in a haystack, generated locally at any ``context_length``.

Needles read ``One of the special magic numbers for <key> is: <7-digit number>.`` with word
keys (``silver-lantern``), as in RULER. Variants:

- ``single``: one needle; asked for its number.
- ``multikey``: ``num_keys`` needles with different keys; one of them is asked for.
- ``multivalue``: ``num_values`` needles share one key; all numbers must be returned.

The asked needle sits at ``needle_depth`` (a list is spread over the samples), the other
needles at random depths of RULER's 40-point grid. ``score`` is substring exact match of the
number; for ``multivalue`` it is the fraction of the numbers that appear in the answer
(RULER's ``string_match_all``: partial recall counts, so 3 of 4 numbers scores 0.75).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

from evaluators.scoring import substring_exact_match
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import at_least, context_length_problems, depth_problems, depths_of
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.haystack import haystack_units, key_word, other_depths, weave

NEEDLE = "One of the special magic numbers for {key} is: {value}."
INTRO = {
    False: "A special magic number is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the number afterwards.",
    True: "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the numbers afterwards.",
}
QUESTION = {
    False: "What is the special magic number for {key} mentioned in the provided text?",
    True: "What are all the special magic numbers for {key} mentioned in the provided text?",
}
ANSWER_PREFIX = {
    False: "The special magic number for {key} mentioned in the provided text is",
    True: "The special magic numbers for {key} mentioned in the provided text are",
}


def _number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def _distinct(make, count: int, rng: random.Random, exclude: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        value = make(rng)
        if value not in exclude:
            exclude.add(value)
            out.append(value)
    return out


@TASKS.register
@dataclass
class Niah(Task):
    """RULER needle in a haystack (single, multikey, multivalue) at ``needle_depth`` in ``context_length`` tokens."""

    name = "niah"
    label_fields = ("variant",)
    max_new_tokens = 64

    #: tokens of the whole prompt as rendered (chat template included) that the context is sized to
    context_length: int = 4096
    #: single: one needle; multikey: num_keys needles, one asked for; multivalue: num_values under one key
    variant: Literal["single", "multikey", "multivalue"] = "single"
    #: needles with different keys (multikey)
    num_keys: int = 4
    #: numbers sharing the asked key, all to be returned (multivalue)
    num_values: int = 4
    #: where the asked needle sits, 0 (start) to 1 (end); a list is spread over the samples
    needle_depth: float | list[float] = field(default=0.5)
    #: the filler: prose (varied sentences), repeat (one passage repeated) or needles (distractor needles)
    haystack: Literal["prose", "repeat", "needles"] = "prose"

    def check(self) -> list[tuple[str, str]]:
        return [
            *context_length_problems(self.context_length),
            *depth_problems("needle_depth", self.needle_depth),
            *at_least("num_keys", self.num_keys, 2 if self.variant == "multikey" else 1),
            *at_least("num_values", self.num_values, 2 if self.variant == "multivalue" else 1),
        ]

    def label(self) -> str:
        return self.name if self.variant == "single" else f"{self.name} {self.variant}"

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        fitter = Fitter(self.context_length, "filler")
        depths = depths_of(self.needle_depth)
        return [self._sample(i, seed, depths[i % len(depths)], fitter, prompt_length) for i in range(count)]

    def _sample(self, index: int, seed: int, depth: float, fitter: Fitter, prompt_length: PromptLength) -> Sample:
        rng = random.Random(f"niah:{self.variant}:{seed}:{index}")
        key = key_word(rng)
        many = self.variant == "multivalue"
        values = _distinct(_number, self.num_values if many else 1, rng, set())
        needles = [(depth, NEEDLE.format(key=key, value=values[0]))]
        more = other_depths(len(values) - 1, rng, depth)
        needles += [(d, NEEDLE.format(key=key, value=v)) for d, v in zip(more, values[1:], strict=True)]
        if self.variant == "multikey":
            keys = _distinct(key_word, self.num_keys - 1, rng, {key})
            numbers = _distinct(_number, len(keys), rng, set(values))
            places = other_depths(len(keys), rng, depth)
            needles += [(d, NEEDLE.format(key=k, value=v)) for d, k, v in zip(places, keys, numbers, strict=True)]
        units = haystack_units(self.haystack, f"niah-haystack:{seed}:{index}", lambda r: self._distractor(r, key))
        question = QUESTION[many].format(key=key)
        prefix = ANSWER_PREFIX[many].format(key=key)

        def context(n: int) -> str:
            return f"{INTRO[many]}\n{weave(units(n), needles)}"

        n = fitter.fit(lambda n: prompt_length(context(n), question, prefix))
        return Sample(
            id=f"niah-{seed}-{index}",
            context=context(n),
            question=question,
            gold=values,
            answer_prefix=prefix,
            meta={"needle_depth": depth, "variant": self.variant, "key": key, "haystack_units": n},
        )

    @staticmethod
    def _distractor(rng: random.Random, asked: str) -> str:
        key = key_word(rng)
        while key == asked:
            key = key_word(rng)
        return NEEDLE.format(key=key, value=_number(rng))

    def score(self, answer: str, sample: Sample) -> Scored:
        numbers = re.findall(r"\d[\d,]*", answer)
        found = [value for value in sample.gold if substring_exact_match(answer, [value])]
        return Scored(
            scores={"score": len(found) / len(sample.gold)},
            format_ok=bool(numbers),
            extracted=numbers or None,
            details={"recalled": found} if len(sample.gold) > 1 else {},
        )
