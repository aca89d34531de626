"""Several compressed caches of one prompt decoded as one batch.

Members of a shared prefill keep different numbers of tokens per layer. Stacking them into
one batch left-pads each layer to the longest member's length; a key mask tells attention
which positions are real, so each row attends to exactly the tokens it would attend to
alone. Positions are not affected: every row continues at the prompt's true positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from evaluators.kvcache.headwise import bottom_right_causal


def batchable(cache: DynamicCache) -> bool:
    """Whether a cache can be a batch row: plain full-precision layers, one length for all heads of a layer."""
    return all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers)


def cache_tokens(cache: DynamicCache) -> int:
    """Tokens held over all layers (one head each): what a row costs to attend over."""
    return sum(layer.keys.shape[-2] for layer in cache.layers)


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(tensor, (0, 0, length - tensor.shape[-2], 0))


def _emptied(tensor: torch.Tensor) -> torch.Tensor:
    """A new zero-length tensor of the same kind (a slice would keep the old storage alive)."""
    return tensor.new_empty((*tensor.shape[:-2], 0, tensor.shape[-1]))


class PaddedBatch:
    """Caches of one prompt stacked into one batch cache, each layer left-padded, with the mask of real keys.

    Building it empties the members' caches layer by layer, so the compressed tokens exist once.
    """

    def __init__(self, caches: list[DynamicCache], config: object):
        self.cache = DynamicCache(config=config)
        #: per layer ``[rows, padded length]``: True where a row holds a real token
        self.real: list[torch.Tensor] = []
        for index, layer in enumerate(self.cache.layers):
            members = [cache.layers[index] for cache in caches]
            padded = max(m.keys.shape[-2] for m in members)
            keys = torch.cat([_left_pad(m.keys, padded) for m in members])
            values = torch.cat([_left_pad(m.values, padded) for m in members])
            spots = torch.arange(padded, device=keys.device)
            self.real.append(torch.stack([spots >= padded - m.keys.shape[-2] for m in members]))
            for m in members:  # the batch holds them now
                m.keys, m.values = _emptied(m.keys), _emptied(m.values)
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values

    @property
    def rows(self) -> int:
        return self.real[0].shape[0]

    def mask(self, layer_idx: int, q_len: int, kv_len: int) -> torch.Tensor:
        """``[rows, 1, q_len, kv_len]``: a row's real cached keys, then the new tokens causally."""
        real = self.real[layer_idx]
        appended = kv_len - real.shape[-1]
        new = bottom_right_causal(q_len, appended, real.device).expand(real.shape[0], 1, q_len, appended)
        cached = real.view(real.shape[0], 1, 1, -1).expand(-1, 1, q_len, -1)
        return torch.cat([cached, new], dim=-1)

    def keep_rows(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (members that finished)."""
        index = torch.tensor(rows, device=self.real[0].device)
        for i, layer in enumerate(self.cache.layers):
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
            self.real[i] = self.real[i].index_select(0, index)
