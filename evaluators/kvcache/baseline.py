"""The full cache: the reference every compression technique is compared against."""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.kvcache.base import TECHNIQUES, KVTechnique


@TECHNIQUES.register
@dataclass
class Baseline(KVTechnique):
    """Keeps every token of every layer."""

    name = "baseline"
