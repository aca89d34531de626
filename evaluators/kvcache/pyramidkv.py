"""PyramidKV: SnapKV selection with budgets that shrink with depth (Cai et al., 2024).

Lower layers attend broadly and get more cache; upper layers attend to few tokens and get
less. Budgets beyond the window fall linearly from ``2c - c/β`` at the first layer to
``c/β`` at the last (``c = cache_size − window_size``), so their mean is ``cache_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evaluators.kvcache.base import TECHNIQUES, LayerView
from evaluators.kvcache.snapkv import SnapKV, keep_top
from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")


def pyramid_budgets(cache_size: int, window_size: int, num_layers: int, beta: float) -> list[int]:
    """Per-layer cache budgets (window included), decreasing linearly, averaging ``cache_size``.

    Rounding is distributed so the integer budgets sum to exactly ``num_layers * cache_size``.
    """
    capacity = cache_size - window_size
    if num_layers == 1:
        return [cache_size]
    low = capacity / beta
    high = 2 * capacity - low
    raw = [high - (high - low) * layer / (num_layers - 1) for layer in range(num_layers)]
    floors = [int(value) for value in raw]
    short = num_layers * capacity - sum(floors)
    by_remainder = sorted(range(num_layers), key=lambda i: (raw[i] - floors[i], -i), reverse=True)
    for i in by_remainder[:short]:
        floors[i] += 1
    return [window_size + f for f in floors]


@TECHNIQUES.register
@dataclass
class PyramidKV(SnapKV):
    """SnapKV scoring, with per-layer budgets shrinking linearly with depth (mean ``cache_size``)."""

    name = "pyramidkv"
    label_fields = (("window_size", "w"), ("cache_size", "c"), ("pooling", ""))

    #: how steeply budgets fall with depth: the last layer keeps (cache_size - window_size) / beta besides the window
    beta: float = 20.0

    def check(self) -> list[tuple[str, str]]:
        problems = super().check()
        if self.beta <= 1:
            problems.append(("beta", f"must be larger than 1 (the top layer keeps c/beta), got {self.beta}"))
        return problems

    def keep(self, view: LayerView) -> torch.Tensor | None:
        budget = pyramid_budgets(self.cache_size, self.window_size, view.num_layers, self.beta)[view.layer_idx]
        length = view.length
        if length < budget:
            return None
        window = min(self.window_size, length)
        return keep_top(view.ranking(self), budget - window, length, window)
