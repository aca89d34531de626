"""Math word problems answered in ``\\boxed{}`` (GSM8K / MATH style), from a local JSON Lines file.

Each line has ``question`` (or ``problem``) and ``answer``: a number or LaTeX. A GSM8K answer
with its worked solution (``... #### 42``) or a MATH solution with a ``\\boxed{}`` is reduced to
the final answer. An optional ``context`` (e.g. a long reference text) is the compressible part;
otherwise the question is the whole prompt.

- ``accuracy``: the last ``\\boxed{}`` of the output equals the gold answer by
  :func:`evaluators.scoring.math_answers_equal` — the comparison GRPO's ``boxed_match`` reward
  and the post-training evaluation use too: numerically when both are numbers once a variable
  (``x=5``) or a unit (``5 apples``) is removed (``1,000`` = ``1000.0``, ``\\frac{3}{4}`` =
  ``0.75``), else as LaTeX with spacing and ``\\left``/``\\right``/``\\dfrac`` differences
  removed. No box scores 0.
- ``abs_error``: ``|boxed - gold|`` when both are numbers; missing, with the reason, when the
  gold answer is not a number, the output has no box, or the box holds no number.
- ``format_ok``: the output has a ``\\boxed{}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.scoring import extract_boxed, final_answer, math_answers_equal, math_number
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.datafiles import Row
from evaluators.tasks.posttrain_files import data_problems, rows, sample_id

INSTRUCTION = "Solve the problem. Put the final answer in \\boxed{}."


def gold_answer(row: Row) -> str:
    """The final answer of a row: after ``####`` (GSM8K), inside ``\\boxed{}`` (MATH), or as written."""
    text = final_answer(str(row.get("answer", (str, int, float))))
    if not text:
        raise row.error("field 'answer' is empty")
    return text


@TASKS.register
@dataclass
class MathBoxed(Task):
    """Math answered in \\boxed{}: accuracy (numeric where possible) and absolute error."""

    name = "math"
    max_new_tokens = 512
    metrics = ("accuracy", "abs_error")
    lower_is_better = ("abs_error",)

    #: a JSON Lines file of questions (or problems) with an answer: a number or LaTeX
    data: str

    def check(self) -> list[tuple[str, str]]:
        return data_problems(self.data)

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        return [
            Sample(
                id=sample_id(row, self.name),
                context=row.get("context", str, default=""),
                question=f"{row.first(('question', 'problem'), str)}\n\n{INSTRUCTION}",
                gold=[gold_answer(row)],
                meta={"line": row.line},
            )
            for row in rows(self.data, count, seed, self.name)
        ]

    def score(self, answer: str, sample: Sample) -> Scored:
        boxed = extract_boxed(answer)
        gold = sample.gold[0]
        scored = Scored(
            scores={"accuracy": float(math_answers_equal(boxed, gold))}, format_ok=boxed is not None, extracted=boxed
        )
        predicted, expected = math_number(boxed), math_number(gold)
        if expected is None:
            scored.missing["abs_error"] = "the gold answer is not a number"
        elif boxed is None:
            scored.missing["abs_error"] = "the output has no \\boxed{} answer"
        elif predicted is None:
            scored.missing["abs_error"] = "the boxed answer is not a number"
        else:
            scored.scores["abs_error"] = abs(predicted - expected)
        return scored
