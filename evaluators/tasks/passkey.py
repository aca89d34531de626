"""Passkey retrieval: a number hidden in repetitive filler at a chosen depth.

The context is sized so that the whole rendered prompt (chat template included) is at
most ``context_length`` tokens; depths given as a list are spread over the samples.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from evaluators.scoring import substring_exact_match
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.fitting import Fitter

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
QUESTION = "What is the pass key? Answer with the number only."
ANSWER_PREFIX = "The pass key is"


def _needle(key: str) -> str:
    return f"The pass key is {key}. Remember it. {key} is the pass key. "


def _context(units: int, depth: float, key: str) -> str:
    before = round(units * depth)
    return FILLER * before + _needle(key) + FILLER * (units - before)


@TASKS.register
@dataclass
class Passkey(Task):
    """Find a 5-digit pass key hidden at ``needle_depth`` in ``context_length`` tokens of filler."""

    name = "passkey"
    max_new_tokens = 12

    #: tokens of the whole prompt as rendered (chat template included) that the context is sized to
    context_length: int = 1024
    #: where the key sits in the filler, 0 (start) to 1 (end); a list is spread over the samples
    needle_depth: float | list[float] = field(default=0.5)

    @property
    def depths(self) -> list[float]:
        return list(self.needle_depth) if isinstance(self.needle_depth, list) else [self.needle_depth]

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.context_length < 64:
            problems.append(("context_length", f"must be at least 64 tokens, got {self.context_length}"))
        if not self.depths or any(not 0.0 <= d <= 1.0 for d in self.depths):
            problems.append(("needle_depth", f"depths are fractions of the context in [0, 1], got {self.needle_depth}"))
        return problems

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        units = self._fit_units(prompt_length)
        samples = []
        for i in range(count):
            key = str(random.Random(f"passkey:{seed}:{i}").randint(10000, 99999))
            depth = self.depths[i % len(self.depths)]
            samples.append(
                Sample(
                    id=f"passkey-{seed}-{i}",
                    context=_context(units, depth, key),
                    question=QUESTION,
                    gold=[key],
                    answer_prefix=ANSWER_PREFIX,
                    meta={"needle_depth": depth},
                )
            )
        return samples

    def _fit_units(self, prompt_length: PromptLength) -> int:
        """The most filler units whose prompt still fits ``context_length``."""
        return Fitter(self.context_length, "filler").fit(
            lambda units: prompt_length(_context(units, 0.5, "00000"), QUESTION, ANSWER_PREFIX)
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        number = re.search(r"\d+", answer)
        return Scored(
            scores={"score": substring_exact_match(answer, sample.gold)},
            format_ok=number is not None,
            extracted=number.group(0) if number else None,
        )
