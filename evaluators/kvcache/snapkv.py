"""SnapKV: keep the prefix tokens the observation window attends to most (Li et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from evaluators.kvcache.base import TECHNIQUES, KVTechnique, LayerView, window_attention
from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")
    F = lazy_module("torch.nn.functional")


def pool_scores(scores: torch.Tensor, pooling: str, kernel_size: int) -> torch.Tensor:
    """Smooth per-token scores over neighbours so that kept tokens come in spans, not single tokens."""
    if kernel_size <= 1:
        return scores
    shape = scores.shape
    flat = scores.reshape(-1, 1, shape[-1])
    pad = kernel_size // 2
    if pooling == "maxpool":
        pooled = F.max_pool1d(flat, kernel_size, stride=1, padding=pad)
    else:
        pooled = F.avg_pool1d(flat, kernel_size, stride=1, padding=pad, count_include_pad=False)
    return pooled[..., : shape[-1]].reshape(shape)


def prefix_scores(view: LayerView, window: int, pooling: str, kernel_size: int) -> torch.Tensor:
    """SnapKV's score of every prefix token ``[batch, kv_heads, length - window]``.

    Attention from the window's queries, summed over the window, averaged over the query
    heads that share a KV head, pooled over neighbours.
    """
    attention = window_attention(view, window)  # [batch, kv_heads, window, length]
    scores = attention[..., : view.length - window].sum(dim=-2)
    return pool_scores(scores, pooling, kernel_size)


def keep_top(ranking: torch.Tensor, budget: int, length: int, window: int) -> torch.Tensor:
    """Indices of the ``budget`` best prefix tokens plus the whole window, ascending.

    The best are a prefix of ``ranking`` (see ``rank``): budgets sharing a scorer share one sort.
    """
    top = ranking[..., :budget]
    tail = torch.arange(length - window, length, device=ranking.device)
    tail = tail.view(1, 1, -1).expand(*ranking.shape[:2], -1)
    return torch.cat([top.sort(dim=-1).values, tail], dim=-1)


@TECHNIQUES.register
@dataclass
class SnapKV(KVTechnique):
    """Keep the window plus the top ``cache_size - window_size`` prefix tokens by window attention."""

    name = "snapkv"
    label_fields = (("window_size", "w"), ("cache_size", "c"), ("pooling", ""))

    #: the observation window: the last w prompt tokens, whose attention scores the others (always kept)
    window_size: int = 32
    #: tokens kept per layer, window included
    cache_size: int = 1024
    #: how a token's score is smoothed over its neighbours, so kept tokens come in spans
    pooling: Literal["avgpool", "maxpool"] = "avgpool"
    #: width of that smoothing in tokens (odd; 1: none)
    kernel_size: int = 7

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.window_size < 1:
            problems.append(("window_size", f"must be >= 1, got {self.window_size}"))
        if self.cache_size <= self.window_size:
            problems.append(
                (
                    "cache_size",
                    f"must be larger than window_size ({self.window_size}): the cache holds the "
                    f"window plus the selected tokens, got {self.cache_size}",
                )
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(("kernel_size", f"must be a positive odd number, got {self.kernel_size}"))
        return problems

    def label(self) -> str:
        text = super().label()
        return text if self.kernel_size == 7 else f"{text} k{self.kernel_size}"

    def scorer_key(self) -> tuple:
        """Window attention and pooling depend on these alone, not on the cache size (PyramidKV's neither)."""
        return ("window attention", self.window_size, self.pooling, self.kernel_size)

    def score(self, view: LayerView) -> torch.Tensor:
        return prefix_scores(view, min(self.window_size, view.length), self.pooling, self.kernel_size)

    def keep(self, view: LayerView) -> torch.Tensor | None:
        length = view.length
        if length < self.cache_size:  # at exactly the budget, selection runs and keeps everything
            return None
        window = min(self.window_size, length)
        return keep_top(view.ranking(self), self.cache_size - window, length, window)
