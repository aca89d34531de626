"""Rendering samples into token ids under the chat-template policy.

``auto`` applies the tokenizer's template when it has one; ``on`` requires one; ``off``
sends plain text, which is allowed but flagged for chat models — a reasoning model run
without its template produced nonsense for weeks in one of the studies this platform
serves. The context and the question are tokenized separately so the boundary between
the compressible part and the question is exact, and identical whether or not the
question is compressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from evaluators.scoring import THINK_OPEN
from evaluators.tasks.base import Sample


class ChatTemplateError(ValueError):
    """``chat_template: on`` for a tokenizer that has none."""


@dataclass(frozen=True)
class TemplatePolicy:
    """What ``chat_template: auto|on|off`` means for one tokenizer (evaluation and training alike)."""

    has_template: bool
    #: prompts go through the tokenizer's template
    applied: bool
    #: turning the template off for a model that has one is allowed, but the run is flagged
    off_for_chat_model: bool
    #: the template starts the answer inside ``<think>`` (DeepSeek-R1 distills): outputs
    #: begin with reasoning, and an answer prefix would land inside it
    opens_thinking: bool

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, policy: str = "auto") -> TemplatePolicy:
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if policy == "on" and not has_template:
            raise ChatTemplateError(
                "chat_template is 'on' but this tokenizer has no chat template; use 'auto' or 'off'"
            )
        applied = has_template and policy != "off"
        return cls(has_template, applied, policy == "off" and has_template, applied and _opens_thinking(tokenizer))


def _opens_thinking(tokenizer: PreTrainedTokenizerBase) -> bool:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    return text.rstrip().endswith(THINK_OPEN)


@dataclass
class Rendered:
    ids: list[int]
    question_start: int


class PromptRenderer:
    """Turns samples into prompt token ids for one tokenizer and template policy."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, policy: str = "auto"):
        self.tokenizer = tokenizer
        template = TemplatePolicy.of(tokenizer, policy)
        self.has_template = template.has_template
        self.applied = template.applied
        self.off_for_chat_model = template.off_for_chat_model
        self.opens_thinking = template.opens_thinking
        self._specials = self._leading_specials()

    def _leading_specials(self) -> list[int]:
        """Tokens the tokenizer puts in front of text on its own (BOS for most models)."""
        with_specials = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        without = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        return with_specials[: len(with_specials) - len(without)] if with_specials[-len(without) :] == without else []

    def texts(self, context: str, question: str, answer_prefix: str) -> tuple[str, str]:
        """The prompt as (compressible context part, question part) strings."""
        if not self.applied:
            return context, f"\n\n{question}\n{answer_prefix}".rstrip(" ")
        user = f"{context}\n\n{question}" if context else question
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        split = text.find(user) + len(context)
        return text[:split], text[split:] + ("" if self.opens_thinking else answer_prefix)

    def _encode(self, head: str, tail: str) -> tuple[list[int], int]:
        ids = self.tokenizer(head, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token
        if self._specials and not (bos and head.startswith(bos)):
            ids = self._specials + ids
        split = len(ids)
        return ids + self.tokenizer(tail, add_special_tokens=False)["input_ids"], split

    def render(self, sample: Sample) -> Rendered:
        ids, split = self._encode(*self.texts(sample.context, sample.question, sample.answer_prefix))
        return Rendered(ids, split)

    def locate(self, sample: Sample, text: str) -> tuple[int, int]:
        """Token span ``[start, end)`` of the first ``text`` inside the sample's context, as rendered."""
        head, _ = self.texts(sample.context, sample.question, sample.answer_prefix)
        start_char = head.find(text)
        if start_char < 0:
            raise ValueError(f"{text!r} does not occur in the sample's context")
        end_char = start_char + len(text)
        encoded = self.tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)
        offset = len(self._specials) if self._specials and not head.startswith(self.tokenizer.bos_token or "\0") else 0
        inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > start_char and a < end_char]
        return offset + inside[0], offset + inside[-1] + 1

    def length(self, context: str, question: str, answer_prefix: str) -> int:
        """Token count of the rendered prompt, for tasks that size contexts to a target length."""
        return len(self._encode(*self.texts(context, question, answer_prefix))[0])
