"""StreamingLLM: attention sinks plus a recent window (Xiao et al., 2023)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evaluators.kvcache.base import TECHNIQUES, KVTechnique, LayerView, positions
from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")


@TECHNIQUES.register
@dataclass
class StreamingLLM(KVTechnique):
    """Keep the first ``sink_tokens`` and the most recent tokens, ``cache_size`` in all."""

    name = "streamingllm"
    label_fields = (("cache_size", "c"), ("sink_tokens", "s"))

    #: tokens kept per layer, sinks included
    cache_size: int = 1024
    #: first tokens of the prompt always kept (attention sinks)
    sink_tokens: int = 4

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.sink_tokens < 0:
            problems.append(("sink_tokens", f"must be >= 0, got {self.sink_tokens}"))
        if self.cache_size <= self.sink_tokens:
            problems.append(
                (
                    "cache_size",
                    f"must be larger than sink_tokens ({self.sink_tokens}) to keep any recent token, "
                    f"got {self.cache_size}",
                )
            )
        return problems

    def keep(self, view: LayerView) -> torch.Tensor | None:
        length = view.length
        if length < self.cache_size:  # at exactly the budget, selection runs and keeps everything
            return None
        device = view.keys.device
        recent = self.cache_size - self.sink_tokens
        kept = torch.cat(
            [
                torch.arange(self.sink_tokens, device=device),
                torch.arange(length - recent, length, device=device),
            ]
        )
        return positions(kept, view.keys.shape[0], view.keys.shape[1])
