"""The KV-cache technique interface: one dataclass per method, registered by name.

A technique sees one layer at a time, right after that layer has attended over the whole
compressible prompt, and says which cached tokens each KV head keeps. Layers are
independent once their own attention has run, so compressing layer by layer during
prefill gives the same cache as compressing after it, at a lower memory peak.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")

from sweeps.registry import Registry

#: every technique by its ``name``: ``@TECHNIQUES.register`` adds one, and other packages add
#: theirs through the entry-point group ``evaluators.techniques``
TECHNIQUES: Registry[type[KVTechnique]] = Registry("technique", group="evaluators.techniques")


def rank(scores: torch.Tensor) -> torch.Tensor:
    """Token positions by descending score, ties to the earlier position.

    Every budget's top-k is a prefix of this one order, so members that share a scorer at
    several cache sizes sort once, and a member alone selects exactly what it selects in a group.
    """
    return scores.argsort(dim=-1, descending=True, stable=True)


@dataclass
class LayerView:
    """What a technique may look at for one layer of one prompt.

    ``queries`` are the post-RoPE queries of the compressible tokens
    ``[batch, q_heads, tokens, head_dim]``; ``keys``/``values`` the layer's cache
    ``[batch, kv_heads, tokens, head_dim]`` (post-RoPE keys, as transformers caches them).
    """

    layer_idx: int
    num_layers: int
    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    scaling: float
    #: token scores already computed for this layer, by scorer key: techniques that share a view
    #: (a shared prefill) and a scorer compute it once
    computed_scores: dict[Hashable, torch.Tensor] = field(default_factory=dict, repr=False)
    #: those scores' rankings, by scorer key: budgets that share a scorer take prefixes of one sort
    computed_rankings: dict[Hashable, torch.Tensor] = field(default_factory=dict, repr=False)

    def scores(self, technique: KVTechnique) -> torch.Tensor:
        """``technique.score(self)``, computed once per scorer key for everyone who looks at this view."""
        key = technique.scorer_key()
        if key is None:
            return technique.score(self)
        if key not in self.computed_scores:
            self.computed_scores[key] = technique.score(self)
        return self.computed_scores[key]

    def ranking(self, technique: KVTechnique) -> torch.Tensor:
        """``rank(self.scores(technique))``, sorted once per scorer key: nested top-k across budgets."""
        key = technique.scorer_key()
        if key is None:
            return rank(technique.score(self))
        if key not in self.computed_rankings:
            self.computed_rankings[key] = rank(self.scores(technique))
        return self.computed_rankings[key]

    @property
    def length(self) -> int:
        return self.keys.shape[-2]

    @property
    def groups(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.queries.shape[1] // self.keys.shape[1]


@dataclass
class HeadSplit:
    """A keep decision that differs per KV head: ``full`` heads keep every token, the others
    keep ``indices`` (``[batch, streaming heads, kept]``, ascending)."""

    full: torch.Tensor
    indices: torch.Tensor


@dataclass
class ModelContext:
    """What a technique may look at once per model before a trial (DuoAttention estimates its
    head pattern here); ``trial_dir`` receives any file it wants kept as an artifact."""

    model: object
    tokenizer: object
    renderer: object
    trial_dir: object


@dataclass
class KVTechnique:
    """Base of all techniques: the full cache (no compression)."""

    name: ClassVar[str] = ""
    #: parameters that label a trial in run names, with their short prefixes
    label_fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: weight quantization the technique stands for (``int8``/``int4`` of the studies), else None
    weight_bits: ClassVar[int | None] = None
    #: whether the technique's cache can be stored quantized (``kv_bits``)
    supports_kv_bits: ClassVar[bool] = True
    #: whether one prefill can serve this technique and others: false for techniques that hook
    #: the model during prefill themselves (``prefill()``), whose prefill is their own
    shares_prefill: ClassVar[bool] = True

    def keep(self, view: LayerView) -> torch.Tensor | HeadSplit | None:
        """Indices ``[batch, kv_heads, kept]`` of cached tokens to keep, ascending; None keeps all."""
        return None

    def scorer_key(self) -> Hashable | None:
        """What ``score`` depends on besides the layer: techniques with equal keys get the same scores,
        so a shared prefill computes them once per layer. None: no scores, or none worth sharing."""
        return None

    def score(self, view: LayerView) -> torch.Tensor:
        """Per-token scores of one layer ``[batch, kv_heads, tokens]``; read them through ``view.scores(self)``."""
        raise NotImplementedError(f"technique {self.name!r} has no scorer")

    def prefill(self, model: object) -> AbstractContextManager:
        """A context active around the prefill, for techniques that hook the model themselves."""
        return nullcontext()

    def prepare(self, context: ModelContext) -> list[str]:
        """Per-trial set-up with the model at hand; returns artifact file names written to the trial dir."""
        return []

    def check(self) -> list[tuple[str, str]]:
        """Cross-field rules, as ``(field, message)`` pairs; empty when valid."""
        return []

    def label(self) -> str:
        """A short readable label such as ``snapkv w32 c256 maxpool``."""
        parts = [self.name]
        for field_name, prefix in self.label_fields:
            value = getattr(self, field_name)
            parts.append(f"{prefix}{value}" if prefix else str(value))
        return " ".join(parts)


def positions(indices: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
    """Broadcast a 1-D index list to ``[batch, heads, n]`` (same tokens for every head)."""
    return indices.view(1, 1, -1).expand(batch, heads, -1)


def window_attention(view: LayerView, window: int) -> torch.Tensor:
    """Softmax attention of the last ``window`` queries over all keys, averaged over each GQA group.

    Returns ``[batch, kv_heads, window, tokens]`` in float32. The window's queries are causal
    among themselves: query ``i`` of the window sees keys up to its own position.
    """
    batch, kv_heads, length, dim = view.keys.shape
    groups = view.groups
    q = view.queries[:, :, -window:, :].float()
    q = q.reshape(batch, kv_heads, groups * window, dim)  # query heads of one KV head share its keys
    logits = torch.matmul(q, view.keys.float().transpose(-1, -2)) * view.scaling
    logits = logits.view(batch, kv_heads, groups, window, length)
    query_pos = torch.arange(length - window, length, device=logits.device).view(window, 1)
    key_pos = torch.arange(length, device=logits.device).view(1, length)
    logits = logits.masked_fill(key_pos > query_pos, float("-inf"))
    return torch.softmax(logits, dim=-1).mean(dim=2)
