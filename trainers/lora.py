"""LoRA adapters: which layers they attach to, per architecture, and what a wrong name does.

``target_modules: auto`` follows the architecture: separate ``q/k/v/o_proj`` and
``gate/up/down_proj`` on Llama, Qwen2 and Mistral, fused ``qkv_proj`` and ``gate_up_proj``
on Phi-3. A name that matches no linear layer is an error that lists the model's linear
layers, instead of PEFT's bare "not found" (or, for a partial match, a silent adapter on
half the layers the study meant).
"""

from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig
from torch import nn

_SEPARATE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AUTO_TARGETS: dict[str, tuple[str, ...]] = {
    "llama": _SEPARATE,
    "qwen2": _SEPARATE,
    "qwen3": _SEPARATE,
    "mistral": _SEPARATE,
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}
#: layers that map to and from the vocabulary: never adapted by ``auto``
_OUTSIDE = ("lm_head", "embed_out", "output_layer")


class TargetModuleError(ValueError):
    """A LoRA target that names no linear layer of the model."""


def linear_layer_names(model: nn.Module) -> list[str]:
    """Distinct short names of the model's linear layers (bitsandbytes' 4-bit ones included)."""
    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(full_name.rsplit(".", 1)[-1])
    return sorted(names)


def resolve_targets(model: nn.Module, requested: str | Sequence[str], model_type: str) -> list[str]:
    """The layer names LoRA attaches to: the architecture's defaults for ``auto``, else checked names."""
    linear = linear_layer_names(model)
    if requested == "auto":
        targets = list(AUTO_TARGETS.get(model_type, [n for n in linear if n not in _OUTSIDE]))
        absent = [t for t in targets if t not in linear]
        if absent:
            raise TargetModuleError(
                f"auto targets for {model_type} ({', '.join(targets)}) include {', '.join(absent)}, which this "
                f"model does not have; its linear layers are: {', '.join(linear)}"
            )
        return targets
    unknown = [t for t in requested if t not in linear]
    if unknown:
        raise TargetModuleError(
            f"target_modules {', '.join(map(repr, unknown))} match no linear layer of this {model_type} model; "
            f"its linear layers are: {', '.join(linear)}"
        )
    return list(requested)


def lora_config(targets: list[str], r: int, alpha: int, dropout: float) -> LoraConfig:
    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none", task_type="CAUSAL_LM"
    )


def skeleton(source: str, hf_token: str | None = None) -> tuple[nn.Module, str]:
    """The model's module tree without weights (on the meta device) and its ``model_type``: cheap, for checks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source, token=hf_token)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model, config.model_type
