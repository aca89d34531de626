"""HELMET's many-shot in-context classification on Banking77 and Clinic150.

HELMET loads these from the Hugging Face hub; here they are local JSON Lines files under
``data_dir`` in the hub datasets' own fields: ``icl/banking77_train.jsonl`` and
``icl/banking77_test.jsonl`` with ``text`` and ``label`` (PolyAI/banking77), and
``icl/clinic150_train.jsonl`` and ``icl/clinic150_validation.jsonl`` with ``text`` and
``intent`` (clinc_oos "plus"; HELMET tests on its validation split).

As in HELMET, each sample maps the label ids to a random permutation of integers, so the model
must learn the mapping from the demonstrations rather than from label names;
demonstrations are label-balanced rounds (every label once per round, in random order) written
``<text>\\nlabel: <n>``, as many as fit ``context_length``. Test samples are label-balanced too.
HELMET stops at the first newline: ``accuracy`` is exact match of the answer line (after
``label:``) with the mapped gold label.
"""

from __future__ import annotations

import random
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluators.scoring import accuracy, answer_line
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import context_length_problems, file_problems
from evaluators.tasks.datafiles import Row, read_jsonl
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.haystack import Units

#: dataset -> (train file, test file, label field)
FILES = {
    "banking77": ("icl/banking77_train.jsonl", "icl/banking77_test.jsonl", "label"),
    "clinic150": ("icl/clinic150_train.jsonl", "icl/clinic150_validation.jsonl", "intent"),
}
INSTRUCTION = (
    "Use the provided mapping from the text to label to assign a label to the text. "
    'Only output "label: {label}" and nothing else.'
)
ANSWER_PREFIX = "label:"


@dataclass(frozen=True)
class Example:
    text: str
    label: Hashable


def _examples(rows: list[Row], label_field: str) -> list[Example]:
    return [Example(row.get("text", str), row.get(label_field, (int, str))) for row in rows]


def balanced(examples: list[Example], rng: random.Random, repeat: bool) -> Iterator[Example]:
    """Rounds holding one example of every label, in random order; labels cycle through their examples.

    With ``repeat`` the rounds go on for ever (an example comes back once its label ran out, as
    HELMET samples with replacement when asked for very many shots); without, a label that ran
    out drops out of later rounds and the iterator ends when all have.
    """
    by_label: dict[Hashable, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    queues = {label: rng.sample(items, len(items)) for label, items in by_label.items()}
    position = dict.fromkeys(queues, 0)
    while True:
        live = [label for label in queues if repeat or position[label] < len(queues[label])]
        if not live:
            return
        rng.shuffle(live)
        for label in live:
            queue = queues[label]
            if position[label] == len(queue):
                rng.shuffle(queue)
                position[label] = 0
            yield queue[position[label]]
            position[label] += 1


@TASKS.register
@dataclass
class Icl(Task):
    """HELMET many-shot ICL (Banking77, Clinic150): label balanced demonstrations filling ``context_length``."""

    name = "icl"
    stop_at_newline = True
    label_fields = ("dataset",)
    max_new_tokens = 20
    metrics = ("accuracy",)

    #: the folder holding icl/ with the datasets' JSON Lines files
    data_dir: str
    #: the label set: banking77 (77 intents) or clinic150 (150 intents)
    dataset: Literal["banking77", "clinic150"] = "banking77"
    #: tokens of the whole prompt as rendered, filled with label-balanced demonstrations
    context_length: int = 8192

    @property
    def paths(self) -> tuple[Path, Path]:
        train, test, _ = FILES[self.dataset]
        return Path(self.data_dir) / train, Path(self.data_dir) / test

    def check(self) -> list[tuple[str, str]]:
        return [*context_length_problems(self.context_length), *file_problems("data_dir", *self.paths)]

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        train_path, test_path = self.paths
        label_field = FILES[self.dataset][2]
        train = _examples(read_jsonl(train_path, f"{self.dataset} train file"), label_field)
        tests = _examples(read_jsonl(test_path, f"{self.dataset} test file"), label_field)
        labels = sorted({e.label for e in train} | {e.label for e in tests}, key=str)
        picked = list(balanced(tests, random.Random(f"icl-test:{self.dataset}:{seed}"), repeat=False))[:count]
        fitter = Fitter(self.context_length, "demonstrations")
        return [self._sample(e, i, seed, train, labels, fitter, prompt_length) for i, e in enumerate(picked)]

    def _sample(
        self,
        example: Example,
        index: int,
        seed: int,
        train: list[Example],
        labels: list[Hashable],
        fitter: Fitter,
        length: PromptLength,
    ) -> Sample:
        rng = random.Random(f"icl:{self.dataset}:{seed}:{index}")
        numbers = list(range(len(labels)))
        rng.shuffle(numbers)
        mapping = {label: str(n) for label, n in zip(labels, numbers, strict=True)}
        stream = balanced(train, rng, repeat=True)
        demos = Units(lambda _: next(stream), f"icl-demos:{seed}:{index}")

        def context(n: int) -> str:
            items = "\n\n".join(f"{d.text}\nlabel: {mapping[d.label]}" for d in demos(n))
            return f"{INSTRUCTION}\n\n{items}"

        n = fitter.fit(lambda n: length(context(n), example.text, ANSWER_PREFIX))
        return Sample(
            id=f"{self.dataset}-{seed}-{index}",
            context=context(n),
            question=example.text,
            gold=[mapping[example.label]],
            answer_prefix=ANSWER_PREFIX,
            meta={"label": example.label, "shots": n, "labels": len(labels)},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        line = answer_line(answer, ANSWER_PREFIX)
        valid = line is not None and re.fullmatch(r"\d+", line) is not None and int(line) < sample.meta["labels"]
        return Scored(scores={"accuracy": accuracy(line, sample.gold)}, format_ok=valid, extracted=line)
