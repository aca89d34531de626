"""INT8 and INT4 as the studies list them: the full cache of a model whose weights are quantized.

They are techniques by name so that a study's technique axis reads as it does in the paper
(baseline, int8, int4, snapkv, ...). ``quantization: 8|4`` beside any cache technique
combines weight quantization with eviction instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.kvcache.base import TECHNIQUES, KVTechnique


@TECHNIQUES.register
@dataclass
class Int8(KVTechnique):
    """Full cache; weights in LLM.int8 (bitsandbytes 8-bit)."""

    name = "int8"
    weight_bits = 8


@TECHNIQUES.register
@dataclass
class Int4(KVTechnique):
    """Full cache; weights in NF4 (bitsandbytes 4-bit)."""

    name = "int4"
    weight_bits = 4
