"""KV-cache techniques, one module each, registered by name in ``TECHNIQUES``."""

from evaluators.kvcache import (  # noqa: F401  (registration)
    baseline,
    duoattention,
    h2o,
    kvpress_backend,
    pyramidkv,
    snapkv,
    streamingllm,
    weights,
)
from evaluators.kvcache.base import TECHNIQUES, KVTechnique, LayerView

__all__ = ["TECHNIQUES", "KVTechnique", "LayerView"]
