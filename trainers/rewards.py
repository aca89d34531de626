"""GRPO rewards built from the evaluators' scorers, selected and weighted in the sweep file.

``rewards: {boxed_match: 1.0, format: 0.2}`` gives TRL two reward functions and their
weights; TRL logs each one's mean and standard deviation per step as
``rewards/<name>/mean`` and ``rewards/<name>/std``.

A reward is a function registered in ``REWARDS`` under its name (other packages add theirs
through the entry-point group ``trainers.rewards``). TRL calls it with the completions and
every column of the rows; the columns it takes without a default are the row fields it needs,
which `sweeps plan` checks every row for. ``judging`` says how the trial's answers are written.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from evaluators.scoring import split_thinking
from evaluators.tasks.json_checks import check_json
from sweeps.registry import Registry
from trainers.answers import judge

Reward = Callable[..., list[float]]

#: every reward by its function's name: ``@REWARDS.register`` adds one, and other packages add
#: theirs through the entry-point group ``trainers.rewards``
REWARDS: Registry[Reward] = Registry("reward", group="trainers.rewards")
#: what TRL passes every reward besides the rows' columns
_TRL_ARGUMENTS = frozenset({"prompts", "completions", "completion_ids", "judging"})


@dataclass(frozen=True)
class Judging:
    """How a trial's answers are written, which rewards read them by."""

    #: the form an answer takes: ``boxed`` or ``json``
    answer_format: str
    #: the completion budget, which ``length_penalty`` divides by
    max_completion_length: int
    #: whether the chat template opens a ``<think>`` block itself, so completions start inside it
    opens_thinking: bool = False


def completion_text(completion: object) -> str:
    """TRL passes plain-text completions as strings and chat completions as message lists."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    return ""


def _json_field(value: object) -> object:
    """Constraints and schemas travel through the dataset as JSON text (Arrow needs one type per column)."""
    if value is None or value == "":
        return None
    return json.loads(value) if isinstance(value, str) else value


@REWARDS.register
def boxed_match(completions: list, answer: list, judging: Judging, **_: object) -> list[float]:
    """1 when the \\boxed{} answer equals the row's answer."""
    return [
        float(bool(judge(completion_text(c), "boxed", gold, None, judging.opens_thinking).correct))
        for c, gold in zip(completions, answer, strict=True)
    ]


@REWARDS.register
def format(completions: list, judging: Judging, **_: object) -> list[float]:  # noqa: A001 - TRL logs the name
    """1 when the answer is in the expected format (answer_format)."""
    return [
        float(judge(completion_text(c), judging.answer_format, None, None, judging.opens_thinking).format_ok)
        for c in completions
    ]


@REWARDS.register
def json_valid(completions: list, judging: Judging, schema: list | None = None, **_: object) -> list[float]:
    """1 when the answer holds JSON, valid for the row's schema if it has one."""
    schemas = schema if schema is not None else [None] * len(completions)
    answers = (split_thinking(completion_text(c), judging.opens_thinking).answer for c in completions)
    return [float(check_json(a, _json_field(s)).valid) for a, s in zip(answers, schemas, strict=True)]


@REWARDS.register
def json_constraints(
    completions: list, constraints: list, judging: Judging, schema: list | None = None, **_: object
) -> list[float]:
    """The fraction of the row's constraints the JSON answer meets (none, when it is not valid JSON)."""
    schemas = schema if schema is not None else [None] * len(completions)
    scores = []
    for c, rules, s in zip(completions, constraints, schemas, strict=True):
        verdict = judge(completion_text(c), "json", None, _json_field(rules), judging.opens_thinking, _json_field(s))
        scores.append(float(verdict.constraints_met or 0.0))
    return scores


@REWARDS.register
def length_penalty(completions: list, completion_ids: list, judging: Judging, **_: object) -> list[float]:
    """Minus the completion's length as a fraction of max_completion_length."""
    return [-len(ids) / judging.max_completion_length for ids in completion_ids]


def build_rewards(
    weights: Mapping[str, float], answer_format: str, max_completion_length: int, opens_thinking: bool = False
) -> tuple[list[Reward], list[float]]:
    """TRL reward functions (named after the reward, for TRL's per-reward metrics) and their weights."""
    judging = Judging(answer_format, max_completion_length, opens_thinking)
    names = list(weights)
    return [_bound(REWARDS[n], judging) for n in names], [float(weights[n]) for n in names]


def _bound(reward: Reward, judging: Judging) -> Reward:
    """``reward`` with the trial's ``judging``, called as TRL calls reward functions."""

    def bound(**inputs: object) -> list[float]:
        return reward(judging=judging, **inputs)

    bound.__name__ = bound.__qualname__ = reward.__name__
    return bound


def row_fields(reward: Reward) -> tuple[str, ...]:
    """The row fields ``reward`` cannot do without: its parameters without a default that TRL does not supply."""
    return tuple(
        p.name
        for p in inspect.signature(reward).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _TRL_ARGUMENTS
    )


def needed_fields(weights: Mapping[str, float]) -> tuple[str, ...]:
    """Row fields the selected rewards score against."""
    return tuple(sorted({field for name in weights if name in REWARDS for field in row_fields(REWARDS[name])}))
