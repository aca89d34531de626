"""KV-cache techniques, one module each, registered by name in ``TECHNIQUES``."""

from evaluators.kvcache import baseline, snapkv, streamingllm  # noqa: F401  (registration)
from evaluators.kvcache.base import TECHNIQUES, KVTechnique, LayerView, register

__all__ = ["TECHNIQUES", "KVTechnique", "LayerView", "register"]
