"""The task interface: samples generated or loaded deterministically, scored per sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

TASKS: dict[str, type[Task]] = {}

#: ``prompt_length(context, question, answer_prefix) -> tokens`` of the fully rendered
#: prompt, so that tasks can size synthetic contexts to a target length under any template.
PromptLength = Callable[[str, str, str], int]


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available under its ``name``."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


@dataclass
class Sample:
    """One prompt: the (compressible) context, the question, and what counts as right."""

    id: str
    context: str
    question: str
    gold: list[str]
    answer_prefix: str = ""
    meta: dict[str, object] = field(default_factory=dict)


@dataclass
class Task:
    """Base of all tasks. Subclasses are dataclasses whose fields are the task's parameters."""

    name: ClassVar[str] = ""
    #: tokens to generate when the sweep does not say
    max_new_tokens: ClassVar[int] = 32
    #: per-sample metric names, averaged over samples into trial metrics
    metrics: ClassVar[tuple[str, ...]] = ("score",)

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        raise NotImplementedError

    def score(self, answer: str, sample: Sample) -> dict[str, float]:
        raise NotImplementedError

    def check(self) -> list[tuple[str, str]]:
        return []

    def label(self) -> str:
        return self.name
