"""One output against one example's gold fields, with the evaluators' scorers.

GRPO rewards and the post-training evaluation both go through :func:`judge`, so a reward
of 1 for ``boxed_match`` and an ``eval_accuracy`` hit mean exactly the same thing — and the
same thing as the ``math`` task's accuracy in the evaluate workload: all three compare with
:func:`evaluators.scoring.math_answers_equal`, gold reduced by the same ``final_answer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evaluators.scoring import (
    extract_boxed,
    extract_json,
    final_answer,
    is_empty,
    math_answers_equal,
    split_thinking,
)
from evaluators.tasks.json_checks import check_json, parse_constraints


@dataclass(frozen=True)
class Judgement:
    """What one output amounts to: its visible answer, what was extracted, and how it scores."""

    answer: str
    extracted: object
    format_ok: bool
    empty: bool
    #: None when the example has no gold to compare with
    correct: bool | None
    #: fraction of the JSON constraints met (none, without valid JSON); None when the example has none
    constraints_met: float | None
    unfinished_thinking: bool


def judge(
    output: str,
    answer_format: str,
    gold: str | None = None,
    constraints: Sequence[Mapping[str, object]] | None = None,
    opens_thinking: bool = False,
    schema: Mapping[str, object] | None = None,
) -> Judgement:
    """Score ``output`` (reasoning stripped first) in ``boxed`` or ``json`` format.

    A JSON answer is checked as the ``json_output`` task checks it: against the row's
    ``schema``, its ``constraints`` and its gold value, whichever the row has.
    """
    thinking = split_thinking(output, opens_thinking)
    answer = thinking.answer
    if answer_format == "json":
        gold_value = extract_json(gold) if gold is not None else None
        check = check_json(
            answer,
            dict(schema) if schema else None,
            parse_constraints(list(constraints)) if constraints else [],
            gold_value,
            has_gold=gold_value is not None,
        )
        graded = bool(constraints) or schema is not None or gold_value is not None
        return Judgement(
            answer,
            check.value,
            check.found,
            is_empty(answer),
            check.correct if graded else None,
            check.constraints_met,
            thinking.unfinished,
        )
    extracted = extract_boxed(answer)
    format_ok = extracted is not None
    correct = None if gold is None else math_answers_equal(extracted, final_answer(gold))
    return Judgement(answer, extracted, format_ok, is_empty(answer), correct, None, thinking.unfinished)


def gold_from_completion(completion: str | None, answer_format: str) -> str | None:
    """The gold answer implied by a reference completion (its ``\\boxed{}`` or JSON), if any."""
    if not completion:
        return None
    if answer_format == "json":
        return completion if extract_json(completion) is not None else None
    return extract_boxed(completion)
