"""Hooking compression into a transformers model through its attention-function registry.

transformers looks attention functions up by name (``config._attn_implementation``) and
calls them with post-RoPE queries and the layer's full keys after the cache update. A
registered wrapper can therefore run the model's own attention, then let a technique
prune that layer's cache — for any architecture that uses the registry (Llama, Qwen2,
Mistral, Phi-3, ...), without re-deriving queries from hidden states per model family.

The wrapper also makes continuation correct when layers hold caches of different
lengths (per-layer budgets): the model sizes its mask from layer 0, so layers whose
cache differs get a bottom-right-aligned causal mask of their own; and layers whose
heads hold different lengths (DuoAttention) attend per group of heads. Batches whose rows
hold caches of different lengths (members of a shared prefill decoding together) attend
under a key mask of their own (``masking_keys``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

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
        if getattr(self.cache.layers[layer_idx], "is_sliding", False):  # already bounded by the model's own window
            decision = None
        else:
            decision = self.technique.keep(LayerView(layer_idx, self.num_layers, query, key, value, scaling))
        self.kept[layer_idx] = fill_layer(self.cache, layer_idx, decision, key, value)


def fill_layer(
    cache: object, layer_idx: int, decision: torch.Tensor | HeadSplit | None, key: torch.Tensor, value: torch.Tensor
) -> list[int]:
    """Make ``cache``'s layer hold what ``decision`` keeps of the layer's full ``key``/``value``; returns
    the tokens each KV head kept.

    The layer either already holds the full prompt (the model wrote it there during this prefill)
    or is still empty (a cache of its own for one member of a shared prefill): both end in the same
    state. Kept-everything layers reference ``key``/``value`` rather than copying them.
    """
    layer = cache.layers[layer_idx]
    heads, length = key.shape[1], key.shape[-2]
    fresh = not layer.is_initialized
    if getattr(layer, "is_sliding", False):
        if fresh:
            layer.update(key, value)
        return [length] * heads
    if isinstance(decision, HeadSplit):
        stream_keys, stream_values = _gather(key[:, ~decision.full], value[:, ~decision.full], decision.indices)
        headwise = HeadwiseLayer(decision.full, key, value, stream_keys, stream_values)
        cache.layers[layer_idx] = headwise
        return headwise.head_lengths()
    if decision is None:
        if fresh:
            _load(layer, key, value, length)
        return [length] * heads
    kept_keys, kept_values = _gather(key, value, decision)
    _load(layer, kept_keys, kept_values, length if fresh else None)
    return [kept_keys.shape[-2]] * heads


def _load(layer: object, keys: torch.Tensor, values: torch.Tensor, seen: int | None) -> None:
    """Store ``keys``/``values`` in a layer; ``seen`` (the prompt length) initializes an empty one."""
    if seen is not None:
        layer.lazy_initialization(keys, values)
        if hasattr(layer, "cumulative_length"):  # quantized layers count every token they were given
            layer.cumulative_length += seen
    if hasattr(layer, "_quantized_keys"):  # a quantized cache holds the prefill in quantized form only
        layer._quantized_keys = layer._quantize(keys.contiguous(), axis=layer.axis_key)
        layer._quantized_values = layer._quantize(values.contiguous(), axis=layer.axis_value)
    else:
        layer.keys, layer.values = keys, values


def _gather(key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    index = indices.unsqueeze(-1).expand(-1, -1, -1, key.shape[-1])
    return key.gather(2, index), value.gather(2, index)


class LayerHook(Protocol):
    """Called by every wrapped attention layer right after it attended over the prefilled tokens."""

    def apply(
        self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float
    ) -> None: ...


class KeyMask(Protocol):
    """Which cached keys each row of a batch may attend to (rows whose caches were padded to one length)."""

    def mask(self, layer_idx: int, q_len: int, kv_len: int) -> torch.Tensor: ...


_ACTIVE: ContextVar[LayerHook | None] = ContextVar("kv_compression", default=None)
_KEY_MASK: ContextVar[KeyMask | None] = ContextVar("kv_key_mask", default=None)


@contextmanager
def hooked(state: LayerHook) -> Iterator[LayerHook]:
    """Within this block, every attention layer of a wrapped model calls ``state.apply`` after attending."""
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


@contextmanager
def compressing(technique: KVTechnique, cache: object, num_layers: int) -> Iterator[Compression]:
    """Within this block, every attention layer of a wrapped model prunes its cache after attending."""
    with hooked(Compression(technique, cache, num_layers)) as state:
        yield state


@contextmanager
def masking_keys(key_mask: KeyMask) -> Iterator[KeyMask]:
    """Within this block, attention uses ``key_mask``'s mask instead of the model's (padded batches)."""
    token = _KEY_MASK.set(key_mask)
    try:
        yield key_mask
    finally:
        _KEY_MASK.reset(token)


def _wrap(base_name: str):
    base = ALL_ATTENTION_FUNCTIONS[base_name] if base_name != "eager" else None

    def attention(module, query, key, value, attention_mask, **kwargs):
        if isinstance(key, HeadwiseStates):
            return headwise_attention(module, query, key, value, kwargs.get("scaling") or module.scaling), None
        key_mask = _KEY_MASK.get()
        if key_mask is not None:
            attention_mask = key_mask.mask(module.layer_idx, query.shape[-2], key.shape[-2])
        elif attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
            attention_mask = bottom_right_causal(query.shape[-2], key.shape[-2], query.device)
        if base_name == "eager" and attention_mask is not None and attention_mask.dtype == torch.bool:
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
