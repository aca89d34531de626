"""H2O: heavy hitters plus recent tokens (Zhang et al., 2023).

A token's importance is the attention it receives, accumulated over every query of the
prompt (not only a window, as in SnapKV). The cache keeps the ``cache_size − recent_size``
heaviest earlier tokens and the ``recent_size`` most recent ones. As in the paper, the budget is
split between the two halves by default (recent_size = cache_size // 2), which is valid for every
cache size; a fixed ``recent_size`` can be given instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evaluators.kvcache.base import TECHNIQUES, KVTechnique, LayerView, rank
from evaluators.kvcache.snapkv import keep_top
from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")

#: attention logits computed per chunk of queries, so long prompts never need an L x L matrix;
#: small enough to stay in a CPU's cache (4K tokens, 2 CPUs, with each chunk's causal key range:
#: 0.66 s a layer, against 1.91 s for chunks of 2**26 over every key)
CHUNK_ELEMENTS = 2**22


def accumulated_attention(view: LayerView) -> torch.Tensor:
    """Attention each key receives, summed over all (causal) queries and averaged over each GQA group.

    Returns ``[batch, kv_heads, tokens]`` in float32. A chunk of queries ending at ``end`` sees only
    the keys before ``end``, so each chunk multiplies and normalises over those keys alone.
    """
    batch, kv_heads, length, dim = view.keys.shape
    groups = view.groups
    keys = view.keys.float().transpose(-1, -2)
    totals = torch.zeros(batch, kv_heads, length, device=view.keys.device)
    step = max(1, CHUNK_ELEMENTS // max(1, groups * kv_heads * length * batch))
    for start in range(0, length, step):
        end = min(length, start + step)
        q = view.queries[:, :, start:end, :].float()
        q = q.reshape(batch, kv_heads, groups * (end - start), dim)
        logits = torch.matmul(q, keys[..., :end]).view(batch, kv_heads, groups, end - start, end)
        logits.mul_(view.scaling)
        key_pos = torch.arange(end, device=logits.device).view(1, end)
        query_pos = torch.arange(start, end, device=logits.device).view(-1, 1)
        logits.masked_fill_(key_pos > query_pos, float("-inf"))
        totals[..., :end] += torch.softmax(logits, dim=-1).sum(dim=3).mean(dim=2)
    return totals


@TECHNIQUES.register
@dataclass
class H2O(KVTechnique):
    """Keep the ``cache_size − recent_size`` most attended tokens and the ``recent_size`` latest ones."""

    name = "h2o"
    label_fields = (("cache_size", "c"), ("recent", "r"))

    #: tokens kept per layer, recent tokens included
    cache_size: int = 1024
    #: recent tokens kept; null splits the budget in half (cache_size // 2) as the H2O paper does
    recent_size: int | None = None

    @property
    def recent(self) -> int:
        """The recent tokens actually kept: ``recent_size``, or half the budget."""
        return self.recent_size if self.recent_size is not None else self.cache_size // 2

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.recent_size is None:
            if self.cache_size < 2:
                problems.append(
                    ("cache_size", f"must be at least 2 (a recent token and a heavy hitter), got {self.cache_size}")
                )
            return problems
        if self.recent_size < 1:
            problems.append(("recent_size", f"must be >= 1, got {self.recent_size}"))
        if self.cache_size <= self.recent_size:
            problems.append(
                (
                    "cache_size",
                    f"must be larger than recent_size ({self.recent_size}): the cache holds "
                    f"the recent tokens plus the heavy hitters, got {self.cache_size} "
                    "(leave recent_size out to split the budget in half)",
                )
            )
        return problems

    def scorer_key(self) -> tuple:
        """Accumulated attention depends on the layer alone: every H2O budget shares it."""
        return ("accumulated attention",)

    def score(self, view: LayerView) -> torch.Tensor:
        return accumulated_attention(view)

    def keep(self, view: LayerView) -> torch.Tensor | None:
        length = view.length
        if length < self.cache_size:
            return None
        recent = self.recent
        scores = view.scores(self)[..., : length - recent]
        return keep_top(rank(scores), self.cache_size - recent, length, recent)
