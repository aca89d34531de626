"""The task interface: samples generated or loaded deterministically, scored per sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from sweeps.registry import Registry

#: every task by its ``name``: ``@TASKS.register`` adds one, and other packages add theirs
#: through the entry-point group ``evaluators.tasks``
TASKS: Registry[type[Task]] = Registry("task", group="evaluators.tasks")

#: ``prompt_length(context, question, answer_prefix) -> tokens`` of the fully rendered
#: prompt, so that tasks can size synthetic contexts to a target length under any template.
PromptLength = Callable[[str, str, str], int]


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
class Scored:
    """How one output scored.

    ``scores`` holds the metrics that could be computed; ``missing`` says, per metric, why
    one could not (no gold for this sample, nothing to parse), so it is reported as missing
    rather than as 0 or NaN. ``format_ok`` is whether the output had the form the task asks
    for (a number, a ``\\boxed{}``, valid JSON): the platform's early warning for broken outputs.
    """

    scores: dict[str, float]
    format_ok: bool
    extracted: object = None
    missing: dict[str, str] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class Task:
    """Base of all tasks. Subclasses are dataclasses whose fields are the task's parameters."""

    name: ClassVar[str] = ""
    #: tokens to generate when the sweep does not say
    max_new_tokens: ClassVar[int] = 32
    #: per-sample metric names, averaged over samples into trial metrics
    metrics: ClassVar[tuple[str, ...]] = ("score",)
    #: those of ``metrics`` where lower is better (an error, a violation rate); the rest, and
    #: ``score``, are higher-is-better
    lower_is_better: ClassVar[tuple[str, ...]] = ()
    #: parameters the label shows (``rag nq``), so run names do not repeat them
    label_fields: ClassVar[tuple[str, ...]] = ()
    #: stop generating at the first line break after some text, as HELMET does for short answers
    stop_at_newline: ClassVar[bool] = False

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        raise NotImplementedError

    def score(self, answer: str, sample: Sample) -> Scored:
        """Score one answer (reasoning already stripped); never raises on malformed output."""
        raise NotImplementedError

    def check(self) -> list[tuple[str, str]]:
        return []

    @classmethod
    def directions(cls) -> dict[str, str]:
        """Each metric's direction, as Tune's ``mode`` says it: ``max`` or ``min`` is better."""
        return {m: "min" if m in cls.lower_is_better else "max" for m in (*cls.metrics, "score")}

    def label(self) -> str:
        return " ".join([self.name, *(str(getattr(self, f)) for f in self.label_fields)])
