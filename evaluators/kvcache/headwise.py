"""A cache layer whose KV heads hold different numbers of tokens, and attention over it.

DuoAttention keeps the whole prompt for retrieval heads and only sinks plus recent tokens
for streaming heads. Padding every head to the longest and masking would keep the memory
the method exists to save, so the layer stores the two groups separately and attention
runs once per group, each over its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer


@dataclass
class HeadwiseStates:
    """Keys (or values) of one layer split into full-cache heads and streaming heads."""

    full: torch.Tensor
    stream: torch.Tensor
    full_heads: torch.Tensor
    stream_heads: torch.Tensor


class HeadwiseLayer(DynamicLayer):
    """``full_heads`` keep every token; the other KV heads keep what eviction left them."""

    def __init__(
        self,
        full_heads: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        stream_keys: torch.Tensor,
        stream_values: torch.Tensor,
    ):
        super().__init__()
        self.full_heads = full_heads.nonzero().flatten()
        self.stream_heads = (~full_heads).nonzero().flatten()
        self.dtype, self.device = keys.dtype, keys.device
        # (full heads, streaming heads): byte counts and lengths read both
        self.keys = (keys[:, self.full_heads], stream_keys)
        self.values = (values[:, self.full_heads], stream_values)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        full_k = torch.cat([self.keys[0], key_states[:, self.full_heads]], dim=-2)
        stream_k = torch.cat([self.keys[1], key_states[:, self.stream_heads]], dim=-2)
        full_v = torch.cat([self.values[0], value_states[:, self.full_heads]], dim=-2)
        stream_v = torch.cat([self.values[1], value_states[:, self.stream_heads]], dim=-2)
        self.keys, self.values = (full_k, stream_k), (full_v, stream_v)
        return (
            HeadwiseStates(full_k, stream_k, self.full_heads, self.stream_heads),
            HeadwiseStates(full_v, stream_v, self.full_heads, self.stream_heads),
        )

    def get_seq_length(self) -> int:
        """The length attention masks are sized from: the full heads' (the true context)."""
        return max(self.keys[0].shape[-2], self.keys[1].shape[-2])

    def head_lengths(self) -> list[int]:
        """Tokens held by each KV head, in head order."""
        lengths = [0] * (len(self.full_heads) + len(self.stream_heads))
        for head in self.full_heads.tolist():
            lengths[head] = self.keys[0].shape[-2]
        for head in self.stream_heads.tolist():
            lengths[head] = self.keys[1].shape[-2]
        return lengths


def bottom_right_causal(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """Query i of the last ``q_len`` tokens sees keys up to ``kv_len - q_len + i``."""
    rows = torch.arange(q_len, device=device).view(-1, 1) + (kv_len - q_len)
    cols = torch.arange(kv_len, device=device).view(1, -1)
    return (cols <= rows).view(1, 1, q_len, kv_len)


def _group_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, groups: int, scaling: float
) -> torch.Tensor:
    """Attention of ``query`` heads over their KV heads (GQA), causal and bottom-right aligned."""
    keys = keys.repeat_interleave(groups, dim=1)
    values = values.repeat_interleave(groups, dim=1)
    q_len = query.shape[-2]
    mask = bottom_right_causal(q_len, keys.shape[-2], query.device) if q_len > 1 else None
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=scaling)


def headwise_attention(
    module: torch.nn.Module, query: torch.Tensor, key: HeadwiseStates, value: HeadwiseStates, scaling: float
) -> torch.Tensor:
    """Attention output ``[batch, q_len, q_heads, head_dim]`` over a headwise layer."""
    groups = query.shape[1] // (len(key.full_heads) + len(key.stream_heads))
    output = torch.empty_like(query)
    for heads, keys, values in ((key.full_heads, key.full, value.full), (key.stream_heads, key.stream, value.stream)):
        if len(heads) == 0:
            continue
        q_heads = (heads.view(-1, 1) * groups + torch.arange(groups, device=heads.device)).flatten()
        output[:, q_heads] = _group_attention(query[:, q_heads], keys, values, groups, scaling).to(query.dtype)
    return output.transpose(1, 2).contiguous()
