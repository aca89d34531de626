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

    #: Hugging Face folder or hub id, a .gguf file (converted once), or smollm2-135m-instruct
    model: str
    #: the task to evaluate on (see sweeps list tasks)
    task: str
    #: the KV-cache technique (see sweeps list techniques); baseline keeps the full cache
    technique: str = "baseline"
    #: auto applies the tokenizer's chat template when it has one; on requires one; off is flagged for chat models
    chat_template: Literal["auto", "on", "off"] = "auto"
    #: samples per trial, generated or drawn deterministically from seed
    samples: int = 10
    #: seed of the samples, so every trial of a sweep sees the same ones
    seed: int = 0
    #: tokens to generate per sample (null: the task's own budget)
    max_new_tokens: int | None = None
    #: weights' dtype; auto is bfloat16 on GPUs and float32 on CPUs
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: compress the whole prompt, question included (as HELMET does); false compresses only the context
    query_aware: bool = True
    #: weights in 8-bit (LLM.int8) or 4-bit (NF4) through bitsandbytes, with any technique (null: unquantized)
    quantization: Literal[4, 8] | None = None
    #: store the KV cache quantized to 2, 4 or 8 bits (hqq backend; null: unquantized)
    kv_bits: Literal[2, 4, 8] | None = None
    #: decode a shared prefill's trials as one padded batch (null: on CPUs, not on GPUs); false: one by one
    batch_decode: bool | None = None
    #: token for gated models (prefer the HF_TOKEN variable); never shown, logged or stored
    hf_token: str | None = field(default=None, repr=False)  # out of the repr, so no log line shows it

    def check(self) -> list[tuple]:
        problems: list[tuple] = []
        if self.task not in TASKS:
            problems.append(("task", "unknown task", TASKS.names()))
        if self.technique not in TECHNIQUES:
            problems.append(("technique", "unknown technique", TECHNIQUES.names()))
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
