"""Extractive question answering (SQuAD style) from a local JSON Lines file.

A line has ``context`` (the compressible passage), ``question`` and ``answers``: SQuAD's
``{"text": [...], "answer_start": [...]}`` or a list of strings. Unanswerable questions
(SQuAD 2.0's empty answer lists) are rejected with the line named: there is nothing to score.

The answer is the line after ``Answer:`` (or the first line); ``f1`` and ``exact_match`` are
SQuAD's, against the best-matching gold answer. ``format_ok``: the answer is not blank.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.scoring import answer_line, exact_match, f1
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.datafiles import Row
from evaluators.tasks.posttrain_files import data_problems, rows, sample_id

INSTRUCTION = "Answer the question with a short span copied from the passage above."
ANSWER_PREFIX = "Answer:"


def gold_answers(row: Row) -> list[str]:
    raw = row.get("answers", (dict, list))
    texts = raw.get("text") if isinstance(raw, dict) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise row.error("field 'answers' must be a list of strings or SQuAD's {'text': [...], 'answer_start': [...]}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise row.error("field 'answers' is empty (unanswerable questions are not supported)")
    return texts


@TASKS.register
@dataclass
class ExtractiveQA(Task):
    """SQuAD-style extractive QA over a passage: token F1 and exact match."""

    name = "extractive_qa"
    max_new_tokens = 32
    metrics = ("f1", "exact_match")

    #: a JSON Lines file of passages (context), questions and answers, SQuAD style
    data: str

    def check(self) -> list[tuple[str, str]]:
        return data_problems(self.data)

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        return [
            Sample(
                id=sample_id(row, self.name),
                context=row.get("context", str),
                question=f"{INSTRUCTION}\n\nQuestion: {row.get('question', str)}",
                gold=gold_answers(row),
                answer_prefix=ANSWER_PREFIX,
                meta={"line": row.line},
            )
            for row in rows(self.data, count, seed, self.name)
        ]

    def score(self, answer: str, sample: Sample) -> Scored:
        line = answer_line(answer, ANSWER_PREFIX)
        said = line or ""
        return Scored(
            scores={"f1": f1(said, sample.gold), "exact_match": exact_match(said, sample.gold)},
            format_ok=line is not None,
            extracted=line,
        )
