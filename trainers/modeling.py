"""Loading the model to fine-tune: full precision or 4-bit NF4 (QLoRA), on the worker's device."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from evaluators.loader import bitsandbytes_config, torch_dtype
from trainers.params import TrainParams


def load_tokenizer(source: str, hf_token: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token (batched training and generation need one)."""
    tokenizer = AutoTokenizer.from_pretrained(source, token=hf_token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: str, params: TrainParams, device: str) -> PreTrainedModel:
    """Weights in the trial's dtype; with ``quantization: 4``, frozen NF4 weights ready for k-bit training."""
    dtype = torch_dtype(params.dtype, device)
    quantization = bitsandbytes_config(params.quantization, dtype)
    if quantization is not None and params.zero_stage == 3:
        # ZeRO-3 partitions parameters by dtype: the packed 4-bit weights must be stored in the
        # dtype of the rest of the model for DeepSpeed to shard them.
        quantization.bnb_4bit_quant_storage = dtype
    model = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=dtype,
        token=params.hf_token,
        quantization_config=quantization,
        device_map={"": device} if quantization is not None else None,
    )
    if quantization is None:
        model = model.to(device)
    else:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing)
    model.config.use_cache = False
    return model
