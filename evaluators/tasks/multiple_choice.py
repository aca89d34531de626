"""Multiple choice (ARC style) and yes/no questions (BoolQ style) from a local JSON Lines file.

A line has ``question`` and either

- ``choices``, in ARC's form ``{"label": ["A", ...], "text": [...]}``, as a list of
  ``{"label", "text"}`` objects, or as a list of texts (labelled A, B, C, ...), and the gold
  label in ``answerKey`` or ``answer`` (a label, or the 0-based index of the right choice); or
- no ``choices`` and a boolean ``answer`` (BoolQ): the labels are ``yes`` and ``no``.

An optional ``passage`` or ``context`` (BoolQ's passage) is the compressible part. The label
is extracted from the answer: a ``\\boxed{}``, "answer is (B)" / "Answer: B", a label at the
start ("B", "(B)", "B."), the text of exactly one choice, or for yes/no questions a leading
yes or no. ``accuracy`` compares it with the gold label; ``format_ok`` is whether a valid
label could be extracted at all.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from evaluators.scoring import accuracy, extract_boxed, normalize
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.datafiles import Row
from evaluators.tasks.posttrain_files import data_problems, rows, sample_id

YES_NO = ("yes", "no")


def _choices(row: Row) -> list[tuple[str, str]]:
    raw = row.get("choices", (dict, list))
    if isinstance(raw, dict):
        labels, texts = raw.get("label"), raw.get("text")
        if not (isinstance(labels, list) and isinstance(texts, list) and len(labels) == len(texts) and labels):
            raise row.error("field 'choices' must hold equally long, non-empty lists 'label' and 'text'")
        return [(str(label), str(text)) for label, text in zip(labels, texts, strict=True)]
    if not raw:
        raise row.error("field 'choices' is empty")
    out = []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            if "label" not in item or "text" not in item:
                raise row.error(f"choices[{index}] must have 'label' and 'text'")
            out.append((str(item["label"]), str(item["text"])))
        elif isinstance(item, str):
            out.append((string.ascii_uppercase[index], item))
        else:
            raise row.error(f"choices[{index}] must be a string or an object with 'label' and 'text'")
    return out


def _gold_label(row: Row, labels: list[str]) -> str:
    answer = row.first(("answerKey", "answer"), (str, int))
    if isinstance(answer, int) and str(answer) not in labels:
        if not 0 <= answer < len(labels):
            raise row.error(f"answer index {answer} is outside the {len(labels)} choices")
        return labels[answer]
    if str(answer) not in labels:
        raise row.error(f"gold label {answer!r} is not one of the choice labels {labels}")
    return str(answer)


def _label_pattern(labels: list[str]) -> str:
    """Labels as alternatives: single letters exactly as written ("A" but not the article "a"), words in any case."""
    parts = []
    for label in sorted(labels, key=len, reverse=True):
        escaped = re.escape(label)
        parts.append(escaped if len(label) == 1 else f"(?i:{escaped})")
    return "|".join(parts)


def extract_label(answer: str, labels: list[str], texts: list[str]) -> str | None:
    """The choice label an answer gives, or None when it gives none of them."""
    by_key = {label.lower(): label for label in labels}
    pattern = _label_pattern(labels)
    boxed = extract_boxed(answer)
    if boxed is not None and boxed.strip(" ().").lower() in by_key:
        return by_key[boxed.strip(" ().").lower()]
    stated = re.search(rf"(?i:answer)\s*(?:(?i:is)\s*:?|:)\s*\(?({pattern})(?!\w)", answer)
    if stated:
        return by_key[stated.group(1).lower()]
    leading = re.match(rf"\s*\(?({pattern})(?:\)|[.:,]|\s*$|\s*\n)", answer)
    if leading:
        return by_key[leading.group(1).lower()]
    said = normalize(answer)
    named = [label for label, text in zip(labels, texts, strict=True) if normalize(text) and normalize(text) == said]
    return named[0] if len(named) == 1 else None


@TASKS.register
@dataclass
class MultipleChoice(Task):
    """Multiple choice (ARC) and yes/no (BoolQ) questions: accuracy of the extracted label."""

    name = "multiple_choice"
    max_new_tokens = 32
    metrics = ("accuracy",)

    #: a JSON Lines file of questions with choices and a gold label (ARC), or a boolean answer (BoolQ)
    data: str

    def check(self) -> list[tuple[str, str]]:
        return data_problems(self.data)

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        return [self._sample(row) for row in rows(self.data, count, seed, self.name)]

    def _sample(self, row: Row) -> Sample:
        question = row.get("question", str)
        context = row.first(("passage", "context"), str) if {"passage", "context"} & row.data.keys() else ""
        if "choices" in row.data:
            choices = _choices(row)
            labels = [label for label, _ in choices]
            gold = _gold_label(row, labels)
            listing = "\n".join(f"{label}. {text}" for label, text in choices)
            word = "letter" if all(label.isalpha() for label in labels) else "label"
            prompt = f"{question}\n{listing}\n\nAnswer with the {word} of the correct choice."
            prefix = "Answer:"
        else:
            answer = row.get("answer", bool)
            choices = [(label, label) for label in YES_NO]
            gold = "yes" if answer else "no"
            prompt = f"{question}?".replace("??", "?") + "\n\nAnswer yes or no."
            prefix = "Answer:"
        return Sample(
            id=sample_id(row, self.name),
            context=context,
            question=prompt,
            gold=[gold],
            answer_prefix=prefix,
            meta={"choices": [list(c) for c in choices], "line": row.line},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        choices = sample.meta["choices"]
        labels = [c[0] for c in choices]  # type: ignore[union-attr]
        texts = [c[1] for c in choices]  # type: ignore[union-attr]
        if labels == list(YES_NO):
            first = re.match(r"\W*(yes|no)\b", answer, flags=re.IGNORECASE)
            label = first.group(1).lower() if first else extract_label(answer, labels, texts)
        else:
            label = extract_label(answer, labels, texts)
        return Scored(scores={"accuracy": accuracy(label, sample.gold)}, format_ok=label is not None, extracted=label)
