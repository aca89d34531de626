"""Hooking compression into a transformers model through its attention-function registry.

transformers looks attention functions up by name (``config._attn_implementation``) and
calls them with post-RoPE queries and the layer's full keys after the cache update. A
registered wrapper can therefore run the model's own attention, then let a technique
prune that layer's cache — for any architecture that uses the registry (Llama, Qwen2,
Mistral, Phi-3, ...), without re-deriving queries from hidden states per model family.

The wrapper also makes continuation correct when layers hold caches of different
lengths (per-layer budgets): the model sizes its mask from layer 0, so layers whose
cache differs get a bottom-right-aligned causal mask of their own; and layers whose
heads hold different lengths (DuoAttention) attend per group of heads.
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

from evaluators.kvcache.base import HeadSplit, KVTechnique, LayerView
from evaluators.kvcache.headwise import HeadwiseLayer, HeadwiseStates, bottom_right_causal, headwise_attention

PREFIX = "kvsweep_"


@dataclass
class Compression:
    """One prefill's compression: the technique, the cache it prunes, and what each head kept."""

    technique: KVTechnique
    cache: object
    num_layers: int
    kept: dict[int, list[int]] = field(default_factory=dict)

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
        heads = key.shape[1]
        if getattr(layer, "is_sliding", False):  # already bounded by the model's own window
            self.kept[layer_idx] = [key.shape[-2]] * heads
            return
        decision = self.technique.keep(LayerView(layer_idx, self.num_layers, query, key, value, scaling))
        if decision is None:
            self.kept[layer_idx] = [key.shape[-2]] * heads
            return
        if isinstance(decision, HeadSplit):
            stream_keys, stream_values = _gather(key[:, ~decision.full], value[:, ~decision.full], decision.indices)
            headwise = HeadwiseLayer(decision.full, key, value, stream_keys, stream_values)
            self.cache.layers[layer_idx] = headwise
            self.kept[layer_idx] = headwise.head_lengths()
            return
        kept_keys, kept_values = _gather(key, value, decision)
        if hasattr(layer, "_quantized_keys"):  # a quantized cache holds the prefill in quantized form only
            layer._quantized_keys = layer._quantize(kept_keys.contiguous(), axis=layer.axis_key)
            layer._quantized_values = layer._quantize(kept_values.contiguous(), axis=layer.axis_value)
        else:
            layer.keys, layer.values = kept_keys, kept_values
        self.kept[layer_idx] = [kept_keys.shape[-2]] * heads


def _gather(key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    index = indices.unsqueeze(-1).expand(-1, -1, -1, key.shape[-1])
    return key.gather(2, index), value.gather(2, index)


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


def _wrap(base_name: str):
    base = ALL_ATTENTION_FUNCTIONS[base_name] if base_name != "eager" else None

    def attention(module, query, key, value, attention_mask, **kwargs):
        if isinstance(key, HeadwiseStates):
            return headwise_attention(module, query, key, value, kwargs.get("scaling") or module.scaling), None
        if attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
            attention_mask = bottom_right_causal(query.shape[-2], key.shape[-2], query.device)
            if base_name == "eager":
                attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                    ~attention_mask, torch.finfo(query.dtype).min
                )
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
