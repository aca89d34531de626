"""Hooking compression into a transformers model through its attention-function registry.

transformers looks attention functions up by name (``config._attn_implementation``) and
calls them with post-RoPE queries and the layer's full keys after the cache update. A
registered wrapper can therefore run the model's own attention, then let a technique
prune that layer's cache — for any architecture that uses the registry (Llama, Qwen2,
Mistral, Phi-3, ...), without re-deriving queries from hidden states per model family.

The wrapper also makes continuation correct when layers hold caches of different
lengths (per-layer budgets): the model sizes its mask from layer 0, so layers whose
cache differs get a bottom-right-aligned causal mask of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from evaluators.kvcache.base import KVTechnique, LayerView

PREFIX = "kvsweep_"


@dataclass
class Compression:
    """One prefill's compression: the technique, the cache it prunes, and what it kept."""

    technique: KVTechnique
    cache: object
    num_layers: int
    kept: dict[int, int] = field(default_factory=dict)

    def apply(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        scaling: float,
    ) -> None:
        layer_idx = module.layer_idx
        layer = self.cache.layers[layer_idx]
        if getattr(layer, "is_sliding", False):  # already bounded by the model's own window
            self.kept[layer_idx] = key.shape[-2]
            return
        view = LayerView(layer_idx, self.num_layers, query, key, value, scaling)
        indices = self.technique.keep(view)
        if indices is not None:
            index = indices.unsqueeze(-1).expand(-1, -1, -1, key.shape[-1])
            layer.keys = key.gather(2, index)
            layer.values = value.gather(2, index)
        self.kept[layer_idx] = layer.keys.shape[-2]


_ACTIVE: ContextVar[Compression | None] = ContextVar("kv_compression", default=None)


@contextmanager
def compressing(technique: KVTechnique, cache: object, num_layers: int) -> Iterator[Compression]:
    """Within this block, every attention layer of a wrapped model prunes its cache after attending."""
    state = Compression(technique, cache, num_layers)
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


def _bottom_right_causal(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """Query i of the last ``q_len`` tokens sees keys up to ``kv_len - q_len + i``."""
    rows = torch.arange(q_len, device=device).view(-1, 1) + (kv_len - q_len)
    cols = torch.arange(kv_len, device=device).view(1, -1)
    return (cols <= rows).view(1, 1, q_len, kv_len)


def _wrap(base_name: str):
    base = ALL_ATTENTION_FUNCTIONS[base_name] if base_name != "eager" else None

    def attention(module, query, key, value, attention_mask, **kwargs):
        if attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
            attention_mask = _bottom_right_causal(query.shape[-2], key.shape[-2], query.device)
            if base_name == "eager":
                attention_mask = torch.zeros(
                    attention_mask.shape, dtype=query.dtype, device=query.device
                ).masked_fill(~attention_mask, torch.finfo(query.dtype).min)
        fn = base or _eager()
        output, weights = fn(module, query, key, value, attention_mask, **kwargs)
        state = _ACTIVE.get()
        if state is not None:
            state.apply(module, query, key, value, kwargs.get("scaling") or module.scaling)
        return output, weights

    return attention


def _eager():
    from transformers.models.llama.modeling_llama import eager_attention_forward

    return eager_attention_forward


def install(model: torch.nn.Module) -> str:
    """Route the model's attention through the compression wrapper; returns the new implementation name.

    The wrapper delegates to whatever the model used (sdpa, eager, flash-attention), and
    registers the matching mask function under the new name so masks are built as before.
    """
    base_name = model.config._attn_implementation or "sdpa"
    if base_name.startswith(PREFIX):
        return base_name
    name = PREFIX + base_name
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _wrap(base_name))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base_name])
    model.set_attn_implementation(name)
    return name
