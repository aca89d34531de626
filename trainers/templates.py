"""Chat templates for training: one rendered example is checked before any worker starts.

A reasoning model run without its chat template produced nonsense for weeks in one of the
studies this platform serves. So before training, the trial renders one example the way
TRL will, and fails in seconds when the template is missing (``chat_template: on``), when
the prompt renders differently once the answer is added (the loss mask would cut into the
prompt), or when the assistant span is empty (SFT would learn nothing). The rendered
example is kept as the artifact ``chat_example.txt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from evaluators import prompting
from trainers.data import Example

CHAT_EXAMPLE = "chat_example.txt"


class ChatTemplateError(prompting.ChatTemplateError):
    """The chat template cannot render the training data as intended."""


@dataclass(frozen=True)
class TemplateCheck:
    """One example as it will be trained on: the masked prompt and the learned completion."""

    prompt: str
    completion: str
    prompt_tokens: int
    completion_tokens: int


class Renderer:
    """Turns examples into TRL rows and generation prompts under the chat-template policy."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, policy: str = "auto"):
        self.tokenizer = tokenizer
        try:
            template = prompting.TemplatePolicy.of(tokenizer, policy)
        except prompting.ChatTemplateError as exc:
            raise ChatTemplateError(str(exc)) from None
        self.has_template = template.has_template
        self.applied = template.applied
        self.off_for_chat_model = template.off_for_chat_model
        self.opens_thinking = template.opens_thinking

    # -- text ------------------------------------------------------------------------------------
    @staticmethod
    def plain(prompt: tuple[dict, ...]) -> str:
        """Without a template: the turns' text, one paragraph each, and a new line for the answer."""
        return "\n\n".join(m["content"] for m in prompt) + "\n"

    def prompt_text(self, prompt: tuple[dict, ...]) -> str:
        """The prompt as the model sees it at generation time."""
        if not self.applied:
            return self.plain(prompt)
        return self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)

    # -- rows for TRL ----------------------------------------------------------------------------
    def sft_row(self, example: Example) -> dict:
        """A prompt-completion row, so TRL trains on the completion only."""
        if self.applied:
            return {
                "prompt": list(example.prompt),
                "completion": [{"role": "assistant", "content": example.completion}],
            }
        return {"prompt": self.plain(example.prompt), "completion": example.completion}

    def grpo_row(self, example: Example) -> dict:
        """A prompt row with its gold fields (as text: Arrow needs one type per column)."""
        return {
            "prompt": list(example.prompt) if self.applied else self.plain(example.prompt),
            "answer": example.answer or "",
            "constraints": json.dumps(example.constraints) if example.constraints is not None else "",
            "schema": json.dumps(example.schema) if example.schema is not None else "",
        }

    # -- the check -------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not self.applied)["input_ids"]

    def check(self, example: Example, kind: str) -> TemplateCheck:
        """Render ``example`` as TRL will; raise ChatTemplateError when the result cannot train."""
        prompt = self.prompt_text(example.prompt)
        prompt_ids = self._ids(prompt)
        if not prompt_ids:
            raise ChatTemplateError(f"line {example.line}: the prompt renders to no tokens")
        if kind != "sft":
            return TemplateCheck(prompt, "", len(prompt_ids), 0)
        if self.applied:
            full = self.tokenizer.apply_chat_template(
                [*example.prompt, {"role": "assistant", "content": example.completion}], tokenize=False
            )
        else:
            full = prompt + (example.completion or "")
        full_ids = self._ids(full)
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise ChatTemplateError(
                f"line {example.line}: the chat template renders the prompt differently once the answer is added, "
                f"so the prompt cannot be masked out of the loss.\nprompt alone:\n{prompt}\nwith the answer:\n{full}"
            )
        completion = self.tokenizer.decode(full_ids[len(prompt_ids) :])
        if not completion.strip() or (example.completion or "").strip() not in completion:
            raise ChatTemplateError(
                f"line {example.line}: the assistant span of the rendered example is {completion!r}, which does not "
                f"hold the completion {example.completion!r}: SFT would learn nothing from it.\nrendered:\n{full}"
            )
        return TemplateCheck(prompt, completion, len(prompt_ids), len(full_ids) - len(prompt_ids))

    def describe(self) -> str:
        if self.applied:
            return "the tokenizer's chat template"
        if self.off_for_chat_model:
            return "plain text (chat_template: off, although the tokenizer has a template)"
        return "plain text (the tokenizer has no chat template)"


def write_example(path: Path, renderer: Renderer, check: TemplateCheck) -> Path:
    """Save the rendered example for people to read next to the trial's results."""
    if check.completion_tokens:
        answer = f"== completion: {check.completion_tokens} tokens, trained on ==\n{check.completion}\n"
    else:
        answer = "== completions: generated during training, scored by the rewards ==\n"
    text = (
        f"rendered with {renderer.describe()}\n\n"
        f"== prompt: {check.prompt_tokens} tokens, masked out of the loss ==\n{check.prompt}\n{answer}"
    )
    path.write_text(text, encoding="utf-8")
    return path
