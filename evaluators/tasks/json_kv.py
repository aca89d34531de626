"""HELMET's JSON key-value recall, generated locally at any ``context_length``.

The context is a JSON object of UUID keys and UUID values (drawn from ``random.Random``, so
the same seed gives the same object everywhere), with as many pairs as fit; the question asks
for the value of the key at ``needle_depth``. The prompt follows HELMET's (after "Lost in the
Middle"): ``JSON data:`` then the object, ``Key: "<uuid>"``, and the answer starts at
``Corresponding value:``. ``score`` is substring exact match of the value.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass, field

from evaluators.scoring import substring_exact_match
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import context_length_problems, depth_problems, depths_of
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.haystack import Units

INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object above."
ANSWER_PREFIX = "Corresponding value:"
UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string from ``rng``: reproducible, unlike ``uuid.uuid4``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pair(rng: random.Random) -> tuple[str, str]:
    return random_uuid(rng), random_uuid(rng)


def _question(key: str) -> str:
    return f'{INSTRUCTION}\n\nKey: "{key}"'


@TASKS.register
@dataclass
class JsonKV(Task):
    """HELMET JSON key-value recall: the value of the UUID key at ``needle_depth`` in a JSON object."""

    name = "json_kv"
    max_new_tokens = 64

    #: tokens of the whole prompt as rendered (chat template included) that the context is sized to
    context_length: int = 4096
    #: where the asked key sits in the object, 0 (start) to 1 (end); a list is spread over the samples
    needle_depth: float | list[float] = field(default=0.5)

    def check(self) -> list[tuple[str, str]]:
        return [*context_length_problems(self.context_length), *depth_problems("needle_depth", self.needle_depth)]

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        fitter = Fitter(self.context_length, "key-value pair but the asked one")
        depths = depths_of(self.needle_depth)
        return [self._sample(i, seed, depths[i % len(depths)], fitter, prompt_length) for i in range(count)]

    def _sample(self, index: int, seed: int, depth: float, fitter: Fitter, prompt_length: PromptLength) -> Sample:
        pairs = Units(_pair, f"json_kv:{seed}:{index}")

        def parts(n: int) -> tuple[str, str, int]:
            chosen = pairs(max(n, 1))
            position = round(depth * (len(chosen) - 1))
            context = "JSON data:\n" + json.dumps(dict(chosen), indent=1)
            return context, _question(chosen[position][0]), position

        def tokens(n: int) -> int:
            context, question, _ = parts(n)
            return prompt_length(context, question, ANSWER_PREFIX)

        n = max(fitter.fit(tokens), 1)  # tokens(0) counts one pair: fitting at all means one pair fits
        context, question, position = parts(n)
        key, value = pairs(n)[position]
        return Sample(
            id=f"json_kv-{seed}-{index}",
            context=context,
            question=question,
            gold=[value],
            answer_prefix=ANSWER_PREFIX,
            meta={"needle_depth": depth, "num_kvs": n, "key": key},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        shaped = UUID_SHAPE.findall(answer)
        return Scored(
            scores={"score": substring_exact_match(answer, sample.gold)},
            format_ok=bool(shaped),
            extracted=shaped[0] if shaped else None,
        )
