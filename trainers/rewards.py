"""GRPO rewards built from the evaluators' scorers, selected and weighted in the sweep file.

``rewards: {boxed_match: 1.0, format: 0.2}`` gives TRL two reward functions and their
weights; TRL logs each one's mean and standard deviation per step as
``rewards/<name>/mean`` and ``rewards/<name>/std``.

- ``boxed_match``: 1 when the ``\\boxed{}`` answer equals the row's ``answer``;
- ``format``: 1 when the answer is present in the expected format (``answer_format``);
- ``json_valid``: 1 when the answer holds JSON that validates against the row's ``schema``
  (any JSON, for a row without one);
- ``json_constraints``: the fraction of the row's ``constraints`` the JSON answer meets
  (the ``json_output`` task's constraint language; an invalid answer meets none);
- ``length_penalty``: minus the completion's length as a fraction of ``max_completion_length``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from evaluators.scoring import split_thinking
from evaluators.tasks.json_checks import check_json
from trainers.answers import judge

Reward = Callable[..., list[float]]


@dataclass(frozen=True)
class RewardSpec:
    """A reward by name: what it scores and which row fields it needs."""

    name: str
    description: str
    needs: tuple[str, ...] = ()


REWARDS: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec("boxed_match", "1 when the \\boxed{} answer equals the row's answer", ("answer",)),
        RewardSpec("format", "1 when the answer is in the expected format (answer_format)"),
        RewardSpec("json_valid", "1 when the answer holds JSON, valid for the row's schema if it has one"),
        RewardSpec("json_constraints", "fraction of the row's constraints the JSON answer meets", ("constraints",)),
        RewardSpec("length_penalty", "minus the completion length as a fraction of max_completion_length"),
    )
}


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


def build_rewards(
    weights: Mapping[str, float], answer_format: str, max_completion_length: int, opens_thinking: bool = False
) -> tuple[list[Reward], list[float]]:
    """TRL reward functions (named after the reward, for TRL's per-reward metrics) and their weights."""

    def boxed_match(completions: list, answer: list, **_: object) -> list[float]:
        return [
            float(bool(judge(completion_text(c), "boxed", gold, None, opens_thinking).correct))
            for c, gold in zip(completions, answer, strict=True)
        ]

    def format(completions: list, **_: object) -> list[float]:  # noqa: A001 - TRL logs the function's name
        return [
            float(judge(completion_text(c), answer_format, None, None, opens_thinking).format_ok) for c in completions
        ]

    def json_valid(completions: list, schema: list | None = None, **_: object) -> list[float]:
        schemas = schema if schema is not None else [None] * len(completions)
        answers = (split_thinking(completion_text(c), opens_thinking).answer for c in completions)
        return [float(check_json(a, _json_field(s)).valid) for a, s in zip(answers, schemas, strict=True)]

    def json_constraints(completions: list, constraints: list, schema: list | None = None, **_: object) -> list[float]:
        schemas = schema if schema is not None else [None] * len(completions)
        scores = []
        for c, rules, s in zip(completions, constraints, schemas, strict=True):
            verdict = judge(completion_text(c), "json", None, _json_field(rules), opens_thinking, _json_field(s))
            scores.append(float(verdict.constraints_met or 0.0))
        return scores

    def length_penalty(completions: list, completion_ids: list, **_: object) -> list[float]:
        return [-len(ids) / max_completion_length for ids in completion_ids]

    available = {f.__name__: f for f in (boxed_match, format, json_valid, json_constraints, length_penalty)}
    names = list(weights)
    return [available[n] for n in names], [float(weights[n]) for n in names]


def needed_fields(weights: Mapping[str, float]) -> tuple[str, ...]:
    """Row fields the selected rewards score against."""
    return tuple(sorted({field for name in weights if name in REWARDS for field in REWARDS[name].needs}))
