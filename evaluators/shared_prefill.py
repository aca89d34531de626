"""One prefill for many compression settings: a group of members evaluated on one prompt.

Compression runs per layer right after that layer attended over the full prompt, so a
layer's queries, keys and values — and every later layer — are the same whatever technique
is applied. One forward pass therefore serves every member exactly: at each layer every
member's technique selects from the same view and fills a cache of its own, then the full
layer is dropped, so the prompt's full cache exists once and only one layer at a time.
Members whose techniques share a scorer (``scorer_key``) get its scores computed once per
layer. Members then decode together as padded batches where their caches allow it
(``batch_decode``), else one after another.

Timings per member say what they measure: ``prefill_seconds`` is its equal share of the
shared forward plus its own selection (and any scores it computed first) plus appending
its question; ``decode_seconds`` is its own decoding, or its share of each batched step.
The members' prefill seconds add up to the group's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from evaluators.generation import (
    Decoded,
    Generation,
    cache_bytes,
    decode,
    decode_batch,
    forward_at,
    head_lengths,
    new_cache,
    sync,
)
from evaluators.kvcache.attention import fill_layer, hooked
from evaluators.kvcache.base import KVTechnique, LayerView
from evaluators.kvcache.batch import PaddedBatch, batchable, cache_tokens
from evaluators.prefill_groups import group_key

#: a decode batch holds caches whose sizes differ by at most this factor, so padding never costs more
PADDING_FACTOR = 2.0


@dataclass(frozen=True)
class Member:
    """One compression setting of a group: a technique (prepared) and how its cache is stored."""

    technique: KVTechnique
    kv_bits: int | None = None


@dataclass
class GroupGeneration:
    """A group's outputs on one prompt, one ``Generation`` per member in order, and what was shared.

    A member whose own work raised (its technique's selection, its question, its decoding) has
    None in ``members`` and its exception in ``failures``; the others are unaffected.
    """

    members: list[Generation | None]
    #: forward passes over the compressible prompt (one, however many members)
    prefill_forwards: int
    #: scorer evaluations over all layers; alone, every member would compute its own
    score_computations: int
    #: the shared forward with every member's selection, in seconds
    prefill_seconds: float
    #: sorts of shared scores over all layers: budgets that share a scorer take prefixes of one
    rankings: int = 0
    #: member indices decoded together, one list per batch (a single index: decoded alone)
    decode_batches: list[list[int]] = field(default_factory=list)
    #: member index → why it failed
    failures: dict[int, BaseException] = field(default_factory=dict)


class SharedCompression:
    """The layer hook of a shared prefill: every member selects from each layer's one view."""

    def __init__(self, members: Sequence[Member], scratch: DynamicCache, caches: list, num_layers: int):
        self.members = members
        self.scratch = scratch
        self.caches = caches
        self.num_layers = num_layers
        self.kept: list[dict[int, list[int]]] = [{} for _ in members]
        self.seconds = [0.0] * len(members)
        self.score_computations = 0
        #: sorts of shared scores over all layers (one per scorer and layer, whatever the budgets)
        self.rankings = 0
        #: forward passes seen (counted at the first layer)
        self.forwards = 0
        #: member index → the exception its selection raised (it selects nothing more)
        self.failures: dict[int, BaseException] = {}

    def apply(
        self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float
    ) -> None:
        layer_idx = module.layer_idx
        self.forwards += layer_idx == 0
        view = LayerView(layer_idx, self.num_layers, query, key, value, scaling)
        for index, (member, cache) in enumerate(zip(self.members, self.caches, strict=True)):
            if index in self.failures:
                continue
            start = time.perf_counter()
            try:
                sliding = getattr(cache.layers[layer_idx], "is_sliding", False)
                decision = None if sliding else member.technique.keep(view)
                self.kept[index][layer_idx] = fill_layer(cache, layer_idx, decision, key, value)
            except Exception as exc:  # this member fails alone; the prefill goes on for the others
                self.failures[index] = exc
            sync(key.device)
            self.seconds[index] += time.perf_counter() - start
        self.score_computations += len(view.computed_scores)
        self.rankings += len(view.computed_rankings)
        layer = self.scratch.layers[layer_idx]  # members hold what they kept; the full layer goes
        layer.keys, layer.values = key.new_empty(0), value.new_empty(0)


def _refusals(members: Sequence[Member]) -> list[str]:
    """Why members cannot be in a shared prefill (empty when they all can)."""
    problems = []
    for member in members:
        if not member.technique.shares_prefill:
            problems.append(f"{member.technique.label()} prefills on its own (shares_prefill is false)")
        if member.kv_bits is not None and not member.technique.supports_kv_bits:
            problems.append(f"{member.technique.label()} cannot store its cache in {member.kv_bits} bits")
    return problems


def decode_plan(caches: list, batch_decode: bool) -> list[list[int]]:
    """Which members decode together: plain caches of similar size (within ``PADDING_FACTOR``), smallest first."""
    if not batch_decode:
        return [[i] for i in range(len(caches))]
    plain = sorted((i for i, cache in enumerate(caches) if batchable(cache)), key=lambda i: cache_tokens(caches[i]))
    plan: list[list[int]] = []
    for i in plain:
        if plan and cache_tokens(caches[i]) <= PADDING_FACTOR * cache_tokens(caches[plan[-1][0]]):
            plan[-1].append(i)
        else:
            plan.append([i])
    plan += [[i] for i in range(len(caches)) if not batchable(caches[i])]
    return plan


@torch.inference_mode()
def generate_group(
    model,
    prompt_ids: list[int],
    members: Sequence[Member],
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
    compress_until: int | None = None,
    stop: Callable[[list[int]], bool] | None = None,
    batch_decode: bool = True,
) -> GroupGeneration:
    """``generate`` for every member from one prefill; each member's output equals its own run alone.

    ``compress_until`` is shared (query-aware or not is part of the group): the context is
    prefilled once and each member appends the question to its own compressed cache.
    ``batch_decode=False`` decodes members one after another (batched floating-point
    reductions may differ in low bits from decoding alone in reduced precision).
    """
    if not members:
        raise ValueError("a shared prefill needs at least one member")
    problems = _refusals(members)
    if problems:
        raise ValueError("these members cannot share a prefill: " + "; ".join(problems))
    device = model.device
    ids = torch.tensor([prompt_ids], device=device)
    length = ids.shape[1]
    split = length if compress_until is None else max(1, min(compress_until, length))
    caches = [new_cache(model, m.kv_bits) for m in members]
    scratch = DynamicCache(config=model.config)
    shared = SharedCompression(members, scratch, caches, model.config.num_hidden_layers)

    sync(device)
    start = time.perf_counter()
    with hooked(shared):
        prompt_logits = forward_at(model, ids[:, :split], scratch, 0)
    sync(device)
    prefill_seconds = time.perf_counter() - start
    del scratch
    forward_share = (prefill_seconds - sum(shared.seconds)) / len(members)

    failures = dict(shared.failures)
    logits: dict[int, torch.Tensor] = {}
    prefills: dict[int, float] = {}
    kept: dict[int, list[list[int]]] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for index, cache in enumerate(caches):
        if index in failures:
            caches[index] = None
            continue
        try:
            kept[index] = [head_lengths(layer, shared.kept[index].get(i, [])) for i, layer in enumerate(cache.layers)]
            question_seconds = 0.0  # query-aware: no question of its own, so the shares add up exactly
            logits[index] = prompt_logits
            if split < length:
                start = time.perf_counter()
                logits[index] = forward_at(model, ids[:, split:], cache, split)
                sync(device)
                question_seconds = time.perf_counter() - start
            prefills[index] = forward_share + shared.seconds[index] + question_seconds
            sizes[index] = cache_bytes(cache)
        except Exception as exc:
            failures[index] = exc
            caches[index] = None

    settings = {"length": length, "max_new_tokens": max_new_tokens, "eos_ids": eos_ids, "stop": stop}
    alive = [i for i in range(len(members)) if i not in failures]
    plan = [[alive[i] for i in rows] for rows in decode_plan([caches[i] for i in alive], batch_decode)]
    decoded: dict[int, Decoded] = {}
    for rows in plan:
        try:
            if len(rows) == 1:
                decoded[rows[0]] = decode(model, caches[rows[0]], logits[rows[0]], **settings)
            else:
                batch = PaddedBatch([caches[i] for i in rows], model.config)
                together = decode_batch(model, batch, torch.cat([logits[i] for i in rows]), **settings)
                decoded.update(zip(rows, together, strict=True))
                del batch
        except Exception as exc:
            failures.update(dict.fromkeys(rows, exc))
        for i in rows:  # done with: free before the next decode grows its own
            caches[i] = None

    generations: list[Generation | None] = [
        None
        if i in failures
        else Generation(
            token_ids=decoded[i].token_ids,
            prompt_tokens=length,
            compressed_tokens=split,
            kept_per_layer=[sum(heads) / len(heads) if heads else 0.0 for heads in kept[i]],
            kept_per_head=kept[i],
            kv_cache_bytes=sizes[i][0],
            kv_quant_meta_bytes=sizes[i][1],
            prefill_seconds=prefills[i],
            decode_seconds=decoded[i].seconds,
            stopped_by_eos=decoded[i].stopped_by_eos,
            positions=decoded[i].positions,
        )
        for i in range(len(members))
    ]
    return GroupGeneration(
        members=generations,
        prefill_forwards=shared.forwards,
        score_computations=shared.score_computations,
        prefill_seconds=prefill_seconds,
        rankings=shared.rankings,
        decode_batches=plan,
        failures=failures,
    )


__all__ = ["GroupGeneration", "Member", "decode_plan", "generate_group", "group_key"]
