"""Prefill, compress, decode: greedy generation over a compressed cache at true positions.

``model.generate`` derives positions from the cache length, which is wrong once the
cache is compressed: a generated token must sit at the original prompt length plus its
step, not right after the kept tokens. This loop passes positions explicitly, so RoPE
sees the true distances, while the cache (and the attention mask sized from it) holds
only what was kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, QuantizedCache

from evaluators.kvcache.attention import compressing, masking_keys
from evaluators.kvcache.base import KVTechnique
from evaluators.kvcache.batch import PaddedBatch


@dataclass
class Generation:
    """One prompt's output and the measurements taken on the way."""

    token_ids: list[int]
    prompt_tokens: int
    compressed_tokens: int
    kept_per_layer: list[float]
    kept_per_head: list[list[int]]
    kv_cache_bytes: int
    kv_quant_meta_bytes: int
    prefill_seconds: float
    decode_seconds: float
    stopped_by_eos: bool
    positions: list[int] = field(default_factory=list)


def _bytes(value: object) -> int:
    """Bytes of every tensor inside ``value`` (tensors, tuples, lists, dicts)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_bytes(v) for v in value.values())
    return 0


def cache_bytes(cache: DynamicCache) -> tuple[int, int]:
    """Bytes of the cached keys and values, measured from the cache's tensors: (elements, metadata).

    Elements are what the analytic size counts: full-precision tokens at their dtype, and
    quantized tokens at ``kv_bits`` each (the packed payload). Metadata is what quantization
    adds on top (scales and zero points), reported separately.
    """
    elements = metadata = 0
    for layer in cache.layers:
        elements += _bytes(getattr(layer, "keys", None)) + _bytes(getattr(layer, "values", None))
        for name in ("_quantized_keys", "_quantized_values"):
            quantized = getattr(layer, name, None)
            if isinstance(quantized, tuple):  # hqq: (packed payload, {scale, zero, ...})
                payload, meta = quantized
                elements += _bytes(payload)
                metadata += _bytes(meta)
    return elements, metadata


def new_cache(model, kv_bits: int | None) -> DynamicCache:
    """The cache a prefill writes into: plain, or quantized to ``kv_bits`` (hqq, group-wise)."""
    if kv_bits is None:
        return DynamicCache(config=model.config)
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # hqq groups must divide the tensor; a divisor of one token's elements divides any length
    group = math.gcd(64, config.num_key_value_heads * head_dim)
    return QuantizedCache(backend="hqq", config=config, nbits=kv_bits, q_group_size=group)


def head_lengths(layer: object, recorded: list[int]) -> list[int]:
    """Tokens each KV head of a layer holds after compression, read from the cache where it can be.

    Quantized layers hold the prefill in packed form, so their lengths are the ones recorded
    when they were compressed.
    """
    if hasattr(layer, "head_lengths"):
        return layer.head_lengths()
    if hasattr(layer, "_quantized_keys"):
        return recorded
    keys = getattr(layer, "keys", None)
    if isinstance(keys, torch.Tensor) and keys.dim() == 4:
        return [keys.shape[-2]] * keys.shape[1]
    return recorded


def sync(device: torch.device) -> None:
    """Wait for the device, so a timing covers the work it queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_at(model, ids: torch.Tensor, cache: DynamicCache, start: int) -> torch.Tensor:
    """Run ``ids`` at true positions ``start, start+1, ...``; return the last position's logits."""
    positions = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
    out = model(input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1, :]


@dataclass
class Decoded:
    """One greedy continuation: its tokens, the positions they were fed at, and how it ended."""

    token_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    stopped_by_eos: bool = False
    seconds: float = 0.0

    def take(self, token: int, step: int, length: int, max_new_tokens: int, eos_ids: Collection[int], stop) -> bool:
        """Record the token chosen at ``step``; whether decoding goes on (then it is fed at ``length + step``)."""
        self.token_ids.append(token)
        if token in eos_ids:
            self.stopped_by_eos = True
            return False
        if step == max_new_tokens - 1 or (stop is not None and stop(self.token_ids)):
            return False
        self.positions.append(length + step)
        return True


def decode(
    model,
    cache: DynamicCache,
    logits: torch.Tensor,
    length: int,
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
    stop: Callable[[list[int]], bool] | None = None,
) -> Decoded:
    """Greedy decoding from the prompt's last ``logits``, each new token at its true position ``length + step``."""
    device = model.device
    decoded = Decoded()
    start = time.perf_counter()
    token = int(logits.argmax(dim=-1))
    for step in range(max_new_tokens):
        if not decoded.take(token, step, length, max_new_tokens, eos_ids, stop):
            break
        logits = forward_at(model, torch.tensor([[token]], device=device), cache, length + step)
        token = int(logits.argmax(dim=-1))
    sync(device)
    decoded.seconds = time.perf_counter() - start
    return decoded


def decode_batch(
    model,
    batch: PaddedBatch,
    logits: torch.Tensor,
    length: int,
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
    stop: Callable[[list[int]], bool] | None = None,
) -> list[Decoded]:
    """``decode`` for every row of ``batch`` at once, from each row's last prompt ``logits`` ``[rows, vocab]``.

    Rows that finish leave the batch; every row's tokens sit at the same true positions as
    alone. A step's time is shared out equally among the rows it decoded.
    """
    device = model.device
    decoded = [Decoded() for _ in range(batch.rows)]
    active = list(range(batch.rows))  # which member each batch row is
    tokens = logits.argmax(dim=-1).tolist()
    for step in range(max_new_tokens):
        start = time.perf_counter()
        going = [
            row
            for row, m in enumerate(active)
            if decoded[m].take(tokens[row], step, length, max_new_tokens, eos_ids, stop)
        ]
        if not going:
            break
        if len(going) < len(active):
            batch.keep_rows(going)
        active = [active[row] for row in going]
        ids = torch.tensor([[tokens[row]] for row in going], device=device)
        positions = torch.full((len(going), 1), length + step, device=device)
        with masking_keys(batch):
            out = model(
                input_ids=ids, past_key_values=batch.cache, position_ids=positions, use_cache=True, logits_to_keep=1
            )
        tokens = out.logits[:, -1, :].argmax(dim=-1).tolist()
        sync(device)
        share = (time.perf_counter() - start) / len(active)
        for m in active:
            decoded[m].seconds += share
    return decoded


@torch.inference_mode()
def generate(
    model,
    prompt_ids: list[int],
    technique: KVTechnique,
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
    compress_until: int | None = None,
    kv_bits: int | None = None,
    stop: Callable[[list[int]], bool] | None = None,
) -> Generation:
    """Greedy-decode after compressing the prompt's cache with ``technique``.

    ``compress_until`` splits the prompt: tokens before it are compressed, the rest (the
    question, when compression is not query-aware) is appended uncompressed. None
    compresses the whole prompt. ``kv_bits`` stores the cache quantized to that many bits.
    ``stop`` ends generation early when it returns True for the tokens so far (e.g. at a line break).
    """
    device = model.device
    ids = torch.tensor([prompt_ids], device=device)
    length = ids.shape[1]
    split = length if compress_until is None else max(1, min(compress_until, length))
    cache = new_cache(model, kv_bits)

    sync(device)
    start = time.perf_counter()
    with compressing(technique, cache, model.config.num_hidden_layers) as state, technique.prefill(model):
        logits = forward_at(model, ids[:, :split], cache, 0)
    per_head = [head_lengths(layer, state.kept.get(i, [])) for i, layer in enumerate(cache.layers)]
    if split < length:
        logits = forward_at(model, ids[:, split:], cache, split)
    sync(device)
    prefill_seconds = time.perf_counter() - start
    kv_bytes, kv_meta = cache_bytes(cache)
    kept = [sum(heads) / len(heads) if heads else 0.0 for heads in per_head]

    decoded = decode(model, cache, logits, length, max_new_tokens=max_new_tokens, eos_ids=eos_ids, stop=stop)
    return Generation(
        token_ids=decoded.token_ids,
        prompt_tokens=length,
        compressed_tokens=split,
        kept_per_layer=kept,
        kept_per_head=per_head,
        kv_cache_bytes=kv_bytes,
        kv_quant_meta_bytes=kv_meta,
        prefill_seconds=prefill_seconds,
        decode_seconds=decoded.seconds,
        stopped_by_eos=decoded.stopped_by_eos,
        positions=decoded.positions,
    )
