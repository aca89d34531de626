"""Prefill, compress, decode: greedy generation over a compressed cache at true positions.

``model.generate`` derives positions from the cache length, which is wrong once the
cache is compressed: a generated token must sit at the original prompt length plus its
step, not right after the kept tokens. This loop passes positions explicitly, so RoPE
sees the true distances, while the cache (and the attention mask sized from it) holds
only what was kept.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from evaluators.kvcache.attention import compressing
from evaluators.kvcache.base import KVTechnique


@dataclass
class Generation:
    """One prompt's output and the measurements taken on the way."""

    token_ids: list[int]
    prompt_tokens: int
    compressed_tokens: int
    kept_per_layer: list[int]
    kv_cache_bytes: int
    prefill_seconds: float
    decode_seconds: float
    stopped_by_eos: bool
    positions: list[int] = field(default_factory=list)


def cache_bytes(cache: DynamicCache) -> int:
    """Bytes held by the cache's key and value tensors, measured from the tensors themselves."""
    total = 0
    for layer in cache.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model, ids: torch.Tensor, cache: DynamicCache, start: int) -> torch.Tensor:
    """Run ``ids`` at true positions ``start, start+1, ...``; return the last position's logits."""
    positions = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
    out = model(
        input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=True, logits_to_keep=1
    )
    return out.logits[:, -1, :]


@torch.inference_mode()
def generate(
    model,
    prompt_ids: list[int],
    technique: KVTechnique,
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
    compress_until: int | None = None,
) -> Generation:
    """Greedy-decode after compressing the prompt's cache with ``technique``.

    ``compress_until`` splits the prompt: tokens before it are compressed, the rest (the
    question, when compression is not query-aware) is appended uncompressed. None
    compresses the whole prompt.
    """
    device = model.device
    ids = torch.tensor([prompt_ids], device=device)
    length = ids.shape[1]
    split = length if compress_until is None else max(1, min(compress_until, length))
    cache = DynamicCache(config=model.config)

    _sync(device)
    start = time.perf_counter()
    with compressing(technique, cache, model.config.num_hidden_layers) as state:
        logits = _forward(model, ids[:, :split], cache, 0)
    if split < length:
        logits = _forward(model, ids[:, split:], cache, split)
    _sync(device)
    prefill_seconds = time.perf_counter() - start
    kv_bytes = cache_bytes(cache)
    kept = [state.kept.get(i, 0) for i in range(model.config.num_hidden_layers)]

    generated: list[int] = []
    steps: list[int] = []
    stopped = False
    start = time.perf_counter()
    token = int(logits.argmax(dim=-1))
    for step in range(max_new_tokens):
        generated.append(token)
        if token in eos_ids:
            stopped = True
            break
        if step == max_new_tokens - 1:
            break
        steps.append(length + step)
        logits = _forward(model, torch.tensor([[token]], device=device), cache, length + step)
        token = int(logits.argmax(dim=-1))
    _sync(device)
    decode_seconds = time.perf_counter() - start
    return Generation(
        token_ids=generated,
        prompt_tokens=length,
        compressed_tokens=split,
        kept_per_layer=kept,
        kv_cache_bytes=kv_bytes,
        prefill_seconds=prefill_seconds,
        decode_seconds=decode_seconds,
        stopped_by_eos=stopped,
        positions=steps,
    )
