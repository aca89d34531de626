"""Output health: broken outputs show up as such, not as a quiet score of 0.

Every trial reports how many answers were empty, how many lacked the format the task asks
for, and how many reasoning traces never finished; trials where most outputs are broken
get ``health.*`` tags that the sweep's status and MLflow show. Before a model is used at
all, a one-line canary prompt must get a non-empty answer — a quantized checkpoint that
only emits end-of-sequence fails there, in seconds, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from transformers import PreTrainedTokenizerBase

from evaluators.generation import generate
from evaluators.kvcache import TECHNIQUES
from evaluators.loader import LoadedModel
from evaluators.prompting import PromptRenderer
from evaluators.scoring import THINK_CLOSE, THINK_OPEN
from evaluators.tasks.base import Sample

CANARY = Sample(
    id="canary",
    context="",
    question="Reply with one word: what colour is a clear daytime sky?",
    gold=["blue"],
)
#: the fraction of broken outputs from which a trial is tagged
MOSTLY = 0.5


class HealthError(RuntimeError):
    """The model's outputs are broken before the trial measures anything."""


def visible_text(tokenizer: PreTrainedTokenizerBase, token_ids: list[int]) -> str:
    """Decoded output without special tokens, keeping ``<think>`` markers even where they are special."""
    text = tokenizer.decode(token_ids, skip_special_tokens=False)
    for special in tokenizer.all_special_tokens:
        if special not in (THINK_OPEN, THINK_CLOSE):
            text = text.replace(special, "")
    return text


def canary(loaded: LoadedModel, chat_template: str, describe: str) -> str:
    """Ask the canary question; raise HealthError on an empty answer. Returns the answer."""
    renderer = PromptRenderer(loaded.tokenizer, chat_template)
    rendered = renderer.render(CANARY)
    result = generate(loaded.model, rendered.ids, TECHNIQUES["baseline"](), max_new_tokens=12, eos_ids=loaded.eos_ids)
    answer = visible_text(loaded.tokenizer, result.token_ids)
    if not answer.strip():
        raise HealthError(
            f"{describe} answered the canary prompt {CANARY.question!r} with an empty string "
            f"(generated token ids {result.token_ids[:8]}): its outputs would all be empty"
        )
    return answer


def health_tags(metrics: Mapping[str, float], off_for_chat_model: bool) -> dict[str, str]:
    """``health.*`` tags for a trial whose outputs are mostly broken (or whose template was turned off)."""
    tags = {}
    if off_for_chat_model:
        tags["health.chat_template"] = "off_for_chat_model"
    if metrics.get("empty_rate", 0.0) >= MOSTLY:
        tags["health.empty_outputs"] = f"{metrics['empty_rate']:.0%} of answers are empty"
    if metrics.get("format_ok_rate", 1.0) < MOSTLY:
        tags["health.format"] = f"{1 - metrics['format_ok_rate']:.0%} of answers lack the expected format"
    if metrics.get("unfinished_thinking_rate", 0.0) >= MOSTLY:
        tags["health.unfinished_thinking"] = (
            f"{metrics['unfinished_thinking_rate']:.0%} of answers never closed </think>"
        )
    return tags
