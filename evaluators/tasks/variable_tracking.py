"""RULER's variable tracking, generated locally at any ``context_length``.

``num_chains`` chains of assignments such as ``VAR QPWLE = 41235.``, ``VAR MZRKA = VAR QPWLE.``
(``num_hops`` hops each) are spread evenly through filler, in order, chains interleaved.
The question gives the first chain's value and asks for every variable that ends up holding
it. ``score`` is the fraction of that chain's variables named in the answer (RULER's
``string_match_all`` recall; extra names are not penalized, as in RULER).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Literal

from evaluators.scoring import substring_exact_match
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import at_least, context_length_problems
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.haystack import haystack_units, weave

INTRO = "Memorize and track the chain(s) of variable assignment hidden in the following text."
QUESTION = "Question: Find all variables that are assigned the value {value} in the text above."
ANSWER_PREFIX = (
    "Answer: According to the chain(s) of variable assignment in the text above, "
    "{count} variables are assigned the value {value}, they are:"
)
VARIABLE = re.compile(r"\b[A-Z]{5}\b")


def _names(count: int, rng: random.Random) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(5))
        if name not in names:
            names.append(name)
    return names


def _statements(chains: list[list[str]], values: list[str]) -> list[str]:
    """Every assignment, hop by hop with the chains interleaved, so each chain reads in order."""
    out = []
    for hop in range(len(chains[0])):
        for chain, value in zip(chains, values, strict=True):
            source = value if hop == 0 else f"VAR {chain[hop - 1]}"
            out.append(f"VAR {chain[hop]} = {source}.")
    return out


@TASKS.register
@dataclass
class VariableTracking(Task):
    """RULER variable tracking: name every variable a chain of ``num_hops`` assignments gives one value."""

    name = "variable_tracking"
    max_new_tokens = 64

    #: tokens of the whole prompt as rendered (chat template included) that the context is sized to
    context_length: int = 4096
    #: chains of assignments hidden in the filler; the first one is asked for
    num_chains: int = 1
    #: assignments per chain, each passing the value on to a new variable
    num_hops: int = 4
    #: the filler: repeat (one passage repeated) or prose (varied sentences)
    haystack: Literal["repeat", "prose"] = "repeat"

    def check(self) -> list[tuple[str, str]]:
        return [
            *context_length_problems(self.context_length),
            *at_least("num_chains", self.num_chains, 1),
            *at_least("num_hops", self.num_hops, 1),
        ]

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        fitter = Fitter(self.context_length, "filler")
        return [self._sample(i, seed, fitter, prompt_length) for i in range(count)]

    def _sample(self, index: int, seed: int, fitter: Fitter, prompt_length: PromptLength) -> Sample:
        rng = random.Random(f"variable_tracking:{seed}:{index}")
        length = self.num_hops + 1
        names = _names(self.num_chains * length, rng)
        chains = [names[c * length : (c + 1) * length] for c in range(self.num_chains)]
        values: list[str] = []
        while len(values) < self.num_chains:
            value = str(rng.randint(10000, 99999))
            if value not in values:
                values.append(value)
        statements = _statements(chains, values)
        inserts = [((k + 1) / (len(statements) + 1), text) for k, text in enumerate(statements)]
        units = haystack_units(self.haystack, f"variable_tracking-haystack:{seed}:{index}")
        question = QUESTION.format(value=values[0])
        prefix = ANSWER_PREFIX.format(count=length, value=values[0])

        def context(n: int) -> str:
            return f"{INTRO}\n\n{weave(units(n), inserts)}"

        n = fitter.fit(lambda n: prompt_length(context(n), question, prefix))
        return Sample(
            id=f"variable_tracking-{seed}-{index}",
            context=context(n),
            question=question,
            gold=chains[0],
            answer_prefix=prefix,
            meta={"value": values[0], "chains": chains, "haystack_units": n},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        named = [name for name in sample.gold if substring_exact_match(answer, [name])]
        found = VARIABLE.findall(answer)
        return Scored(
            scores={"score": len(named) / len(sample.gold)},
            format_ok=bool(found),
            extracted=found or None,
            details={"recalled": named},
        )
