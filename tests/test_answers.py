"""One answer comparison: GRPO's boxed_match reward, the post-training evaluation and the math task agree.

Each row is (the boxed answer a model wrote, the gold answer, whether it is right). Every row goes
through the reward function TRL calls, through the post-training judge and through the ``math``
task's scorer; all three must give the expected verdict.
"""

from __future__ import annotations

import pytest

from evaluators.scoring import math_number
from evaluators.tasks import TASKS, Sample
from trainers.answers import judge
from trainers.rewards import build_rewards

PAIRS = [
    # numbers, written differently
    ("5", "5", True),
    ("5.0", "5", True),
    ("05", "5", True),
    ("6", "5", False),
    ("1,000", "1000", True),
    ("1{,}000", "1000", True),
    ("1,234,567", "1234567", True),
    ("1,23", "123", False),
    ("-5", "-5", True),
    ("-5", "5", False),
    ("\\u22125", "-5", True),
    ("0.75", "3/4", True),
    # fractions
    ("\\frac{3}{4}", "0.75", True),
    ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
    ("-\\frac{1}{2}", "-0.5", True),
    ("\\frac{1}{2}", "-0.5", False),
    ("\\frac{\\pi}{2}", "\\dfrac{\\pi}{2}", True),
    ("2", "\\frac{\\pi}{2}", False),
    # a variable assigned, units, currency, percent
    ("x=5", "5", True),
    ("x = 5", "5", True),
    ("5", "x=5", True),
    ("y = 2x + 1", "2x+1", True),
    ("5 apples", "5", True),
    ("5\\text{ apples}", "5", True),
    ("12\\,\\text{cm}", "12", True),
    ("6 apples", "5", False),
    ("2x", "2", False),
    ("\\$18", "18", True),
    ("45\\%", "45", True),
    ("90^\\circ", "90", True),
    # text answers
    ("\\text{Paris}", "Paris", True),
    ("paris", "Paris", True),
    ("The Nile", "nile", True),
    ("Rome", "Paris", False),
    # LaTeX expressions
    ("\\left( 1, 2 \\right)", "(1,2)", True),
    ("(1,3)", "(1,2)", False),
    ("x + 1", "1", False),
    # empty
    ("", "5", False),
    ("   ", "5", False),
]


def _boxed(answer: str) -> str:
    return f"So the answer is \\boxed{{{answer}}}."


@pytest.mark.parametrize(("answer", "gold", "right"), PAIRS)
def test_reward_evaluation_and_math_task_agree(answer, gold, right):
    text = _boxed(answer.replace("\\u2212", "\u2212"))
    (boxed_match,), _ = build_rewards({"boxed_match": 1.0}, "boxed", max_completion_length=64)
    reward = boxed_match(completions=[text], answer=[gold])[0]
    evaluation = judge(text, "boxed", gold).correct
    task = TASKS["math"](data="unused.jsonl")
    sample = Sample(id="s", context="", question="q", gold=[gold])
    accuracy = task.score(text, sample).scores["accuracy"]
    assert (reward, evaluation, accuracy) == (float(right), right, float(right))


def test_gold_written_as_a_solution_is_reduced_the_same_way_everywhere():
    (boxed_match,), _ = build_rewards({"boxed_match": 1.0}, "boxed", max_completion_length=64)
    for gold in ("Half of 10 is 5.\n#### 5", "The answer is $\\boxed{5}$."):
        assert boxed_match(completions=[_boxed("x=5")], answer=[gold]) == [1.0]
        assert judge(_boxed("5 apples"), "boxed", gold).correct is True


def test_no_box_is_wrong_in_both_paths():
    (boxed_match,), _ = build_rewards({"boxed_match": 1.0}, "boxed", max_completion_length=64)
    assert boxed_match(completions=["The answer is 5."], answer=["5"]) == [0.0]
    sample = Sample(id="s", context="", question="q", gold=["5"])
    assert TASKS["math"](data="unused.jsonl").score("The answer is 5.", sample).scores == {"accuracy": 0.0}


def test_abs_error_reads_the_value_behind_the_form():
    sample = Sample(id="s", context="", question="q", gold=["5"])
    scored = TASKS["math"](data="unused.jsonl").score(_boxed("x = 7 apples"), sample)
    assert scored.scores == {"accuracy": 0.0, "abs_error": 2.0}
    assert math_number("5\\text{ apples}") == 5.0 and math_number("\\frac{\\pi}{2}") is None
