"""DuoAttention: retrieval heads keep the whole cache, streaming heads keep sinks and recent tokens
(Xiao et al., 2024).

Which heads retrieve comes from a head pattern: a file in DuoAttention's own format
(``full_attention_heads.tsv``: one row per layer, one tab-separated gate in [0, 1] per KV
head), or, with no file, an estimate made here: on synthetic passkey prompts, the
attention that each KV head's question queries pay to the hidden key. ``sparsity`` is the
fraction of heads made streaming — those with the lowest gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evaluators.kvcache.base import (
    TECHNIQUES,
    HeadSplit,
    KVTechnique,
    LayerView,
    ModelContext,
    positions,
    window_attention,
)
from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # imported when a technique first computes: planning needs only the dataclasses
    torch = lazy_module("torch")

PATTERN_FILE = "full_attention_heads.tsv"
#: estimated patterns, per loaded model and estimation length, so reused workers estimate once
_ESTIMATES: dict[tuple[int, int], list[list[float]]] = {}


def read_pattern(path: str | Path) -> list[list[float]]:
    """Gates from a DuoAttention pattern folder or its ``full_attention_heads.tsv`` (clipped to [0, 1])."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / PATTERN_FILE
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return [[min(1.0, max(0.0, float(value))) for value in row] for row in rows]


def write_pattern(gates: list[list[float]], path: Path) -> None:
    path.write_text("\n".join("\t".join(f"{g:.6f}" for g in row) for row in gates) + "\n")


def full_heads(gates: list[list[float]], sparsity: float) -> list[list[bool]]:
    """Which heads keep the full cache: all but the ``sparsity`` fraction with the lowest gates.

    Ties break by position (earlier layers and heads become streaming first), so the
    split is deterministic and the streaming fraction is exact up to rounding.
    """
    order = sorted(((g, layer, head) for layer, row in enumerate(gates) for head, g in enumerate(row)))
    streaming = {(layer, head) for _, layer, head in order[: round(sparsity * len(order))]}
    return [[(layer, head) not in streaming for head in range(len(row))] for layer, row in enumerate(gates)]


@dataclass
class _NeedleProbe(KVTechnique):
    """Measures, per layer and KV head, the attention the question pays to a token span; keeps all."""

    span: tuple[int, int] = (0, 0)
    window: int = 16
    mass: dict[int, list[float]] = field(default_factory=dict)

    def keep(self, view: LayerView) -> None:
        attention = window_attention(view, min(self.window, view.length))
        self.mass[view.layer_idx] = attention[..., self.span[0] : self.span[1]].sum(-1).mean(-1)[0].tolist()
        return None


def estimate_gates(context: ModelContext, length: int, samples: int = 3) -> list[list[float]]:
    """Per-head retrieval gates from synthetic passkey prompts: attention from the question to the key."""
    from evaluators.generation import generate
    from evaluators.tasks.passkey import Passkey

    model, renderer = context.model, context.renderer
    task = Passkey(context_length=length, needle_depth=[0.25, 0.5, 0.75])
    totals: list[list[float]] | None = None
    for sample in task.samples(samples, seed=1234, prompt_length=renderer.length):
        rendered = renderer.render(sample)
        probe = _NeedleProbe(
            span=renderer.locate(sample, sample.gold[0]), window=max(8, len(rendered.ids) - rendered.question_start)
        )
        generate(model, rendered.ids, probe, max_new_tokens=1, eos_ids=set())
        mass = [probe.mass[layer] for layer in range(model.config.num_hidden_layers)]
        totals = (
            mass
            if totals is None
            else [[a + b for a, b in zip(r, m, strict=True)] for r, m in zip(totals, mass, strict=True)]
        )
    assert totals is not None
    return [[value / samples for value in row] for row in totals]


@TECHNIQUES.register
@dataclass
class DuoAttention(KVTechnique):
    """Retrieval heads keep everything; streaming heads keep sinks plus recent tokens, ``cache_size`` in all."""

    name = "duoattention"
    label_fields = (("sparsity", "sp"), ("cache_size", "c"))
    supports_kv_bits = False  # heads hold separate caches; transformers' quantized layers hold one
    # shares a prefill: the head pattern is read or estimated in prepare(), once per model, never
    # while a sample is prefilled; keep() only splits each layer's heads

    #: tokens a streaming head keeps per layer, sinks included (retrieval heads keep all)
    cache_size: int = 320
    #: first tokens of the prompt every streaming head keeps
    sink_tokens: int = 64
    #: fraction of the KV heads made streaming: those with the lowest gates
    sparsity: float = 0.5
    #: a DuoAttention head pattern (full_attention_heads.tsv, or its folder); null: estimate one here
    pattern: str | None = None
    #: prompt tokens of the synthetic pass-key prompts a pattern is estimated on (without pattern)
    estimate_length: int = 1024

    def __post_init__(self) -> None:
        self._full: list[torch.Tensor] = []

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not 0.0 <= self.sparsity <= 1.0:
            problems.append(("sparsity", f"is the fraction of streaming heads, in [0, 1]; got {self.sparsity}"))
        if self.sink_tokens < 0:
            problems.append(("sink_tokens", f"must be >= 0, got {self.sink_tokens}"))
        if self.cache_size <= self.sink_tokens:
            problems.append(
                ("cache_size", f"must be larger than sink_tokens ({self.sink_tokens}), got {self.cache_size}")
            )
        if self.pattern is not None:
            path = Path(self.pattern).expanduser()
            if not (path.is_file() or (path / PATTERN_FILE).is_file()):
                problems.append(("pattern", f"{self.pattern!r} is neither a {PATTERN_FILE} file nor a folder with one"))
        if self.estimate_length < 128:
            problems.append(("estimate_length", f"must be at least 128 tokens, got {self.estimate_length}"))
        return problems

    def prepare(self, context: ModelContext) -> list[str]:
        config = context.model.config
        if self.pattern is not None:
            gates = read_pattern(self.pattern)
        else:
            slot = (id(context.model), self.estimate_length)
            if slot not in _ESTIMATES:
                _ESTIMATES[slot] = estimate_gates(context, self.estimate_length)
            gates = _ESTIMATES[slot]
        shape = (config.num_hidden_layers, config.num_key_value_heads)
        if (len(gates), len(gates[0]) if gates else 0) != shape or any(len(row) != shape[1] for row in gates):
            raise ValueError(
                f"head pattern {self.pattern} has {len(gates)} rows of {len(gates[0]) if gates else 0} "
                f"gates; this model needs {shape[0]} layers x {shape[1]} KV heads"
            )
        self._full = [torch.tensor(row) for row in full_heads(gates, self.sparsity)]
        write_pattern(gates, Path(context.trial_dir) / PATTERN_FILE)
        return [PATTERN_FILE]

    def keep(self, view: LayerView) -> HeadSplit | None:
        if not self._full:
            raise RuntimeError("duoattention needs prepare() with the model before the first prompt")
        full = self._full[view.layer_idx].to(view.keys.device)
        length = view.length
        if bool(full.all()) or length < self.cache_size:
            return None
        device = view.keys.device
        recent = self.cache_size - self.sink_tokens
        kept = torch.cat(
            [torch.arange(self.sink_tokens, device=device), torch.arange(length - recent, length, device=device)]
        )
        return HeadSplit(full=full, indices=positions(kept, view.keys.shape[0], int((~full).sum())))
