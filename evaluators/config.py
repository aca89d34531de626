"""Parameters of the evaluate workload, and how a flat trial dict splits into its parts.

A trial's flat parameters are shared out between three dataclasses: the common ones
below, the chosen task's and the chosen technique's. So ``window_size`` is only accepted
where the technique defines it, and never multiplies the trials of other techniques.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Literal

from evaluators.kvcache import TECHNIQUES, KVTechnique
from evaluators.models import ModelRequest, describe_problem
from evaluators.tasks import TASKS, Task


@dataclass
class EvaluateConfig:
    """What to evaluate and how: the model, task and technique by name, and decoding settings."""

    model: str
    task: str
    technique: str = "baseline"
    chat_template: Literal["auto", "on", "off"] = "auto"
    samples: int = 10
    seed: int = 0
    max_new_tokens: int | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    query_aware: bool = True
    quantization: Literal[4, 8] | None = None
    kv_bits: Literal[2, 4, 8] | None = None
    #: a credential: kept out of the repr, so no log line or traceback shows it
    hf_token: str | None = field(default=None, repr=False)

    def check(self) -> list[tuple]:
        problems: list[tuple] = []
        if self.task not in TASKS:
            problems.append(("task", "unknown task", sorted(TASKS)))
        if self.technique not in TECHNIQUES:
            problems.append(("technique", "unknown technique", sorted(TECHNIQUES)))
        else:
            implied = TECHNIQUES[self.technique].weight_bits
            if implied and self.quantization not in (None, implied):
                problems.append(
                    (
                        "quantization",
                        f"technique {self.technique} already means {implied}-bit weights, "
                        f"so quantization {self.quantization} contradicts it",
                    )
                )
        if (
            self.kv_bits is not None
            and self.technique in TECHNIQUES
            and not TECHNIQUES[self.technique].supports_kv_bits
        ):
            problems.append(
                (
                    "kv_bits",
                    f"technique {self.technique} keeps per-head caches, which cannot be stored "
                    "quantized; remove kv_bits or pick another technique",
                )
            )
        if self.kv_bits is not None and importlib.util.find_spec("hqq") is None:
            problems.append(
                (
                    "kv_bits",
                    "KV-cache quantization needs the hqq package, which is not installed: "
                    "pip install 'llm-sweeps[kvquant]'",
                )
            )
        if self.samples < 1:
            problems.append(("samples", f"must be at least 1, got {self.samples}"))
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            problems.append(("max_new_tokens", f"must be at least 1, got {self.max_new_tokens}"))
        problem = describe_problem(self.model)
        if problem:
            problems.append(("model", problem))
        return problems


@cache
def _names(cls: type) -> frozenset[str]:
    """A part's field names, read once per class: run names split every trial of a plan."""
    return frozenset(f.name for f in fields(cls))


def schemas(params: Mapping[str, object]) -> list[type]:
    """The dataclasses that apply to these params: common, then task, then technique."""
    parts: list[type] = [EvaluateConfig]
    task = TASKS.get(str(params.get("task")))
    technique = TECHNIQUES.get(str(params.get("technique", "baseline")))
    if task is not None:
        parts.append(task)
    if technique is not None:
        parts.append(technique)
    return parts


def model_request(config: EvaluateConfig, device: str) -> ModelRequest:
    """What to load for a trial: trials that agree on it share the worker's loaded model."""
    bits = config.quantization or TECHNIQUES[config.technique].weight_bits
    return ModelRequest(config.model, config.dtype, device, bits, config.hf_token)


def split(params: Mapping[str, object]) -> tuple[EvaluateConfig, Task, KVTechnique]:
    """Build the three parts from already-validated flat params (inside a trial)."""
    config = EvaluateConfig(**{k: v for k, v in params.items() if k in _names(EvaluateConfig)})
    task_cls = TASKS[config.task]
    technique_cls = TECHNIQUES[config.technique]
    task = task_cls(**{k: v for k, v in params.items() if k in _names(task_cls)})
    technique = technique_cls(**{k: v for k, v in params.items() if k in _names(technique_cls)})
    return config, task, technique
