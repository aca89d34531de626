"""Which evaluate trials can share a prefill: a key over everything but the compression settings.

Kept apart from the engine (:mod:`evaluators.shared_prefill`) so that planning a sweep, which
groups its trials, never imports torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, fields

from evaluators import config as evaluate_config
from evaluators.kvcache.base import KVTechnique


def _compression_fields(technique: type[KVTechnique]) -> set[str]:
    return {"technique", "kv_bits", *(f.name for f in fields(technique))}


def group_key(params: Mapping[str, object]) -> str:
    """Trials with equal keys can share each sample's prefill: everything but the compression settings.

    ``params`` are a trial's validated flat parameters. Compression settings are the technique,
    its fields and ``kv_bits``; everything else (model, task, samples, ``query_aware``, ...)
    must be equal. The weights a technique implies (``int8``/``int4``) count as ``quantization``,
    so such trials group only with trials that need the same quantized model; a technique that
    prefills on its own (``shares_prefill`` false) groups with nothing. Defaults are filled in,
    so a parameter left out and the same parameter given at its default agree. The key is a hash
    (it never shows a parameter's value).
    """
    config, task, technique = evaluate_config.split(params)
    shared = {"config": asdict(config), "task": {"name": task.name, **asdict(task)}}
    technique_cls = type(technique)
    if technique_cls.shares_prefill:
        for name in _compression_fields(technique_cls):
            shared["config"].pop(name, None)
        shared["config"]["quantization"] = config.quantization or technique_cls.weight_bits
    else:
        shared["technique"] = {"name": technique_cls.name, **asdict(technique)}
    text = json.dumps(shared, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
