"""Loading a model for evaluation, and keeping it loaded across trials in one worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from evaluators.kvcache.attention import install
from evaluators.models import ModelRequest, resolve


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    load_seconds: float
    eos_ids: frozenset[int]


def torch_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on GPUs and float32 on CPUs (where bf16 matmuls are often slower)."""
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def bitsandbytes_config(bits: int | None, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """LLM.int8 for 8 bits, NF4 (with the model's compute dtype) for 4 bits."""
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)
    return None


def stop_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """Every token id that ends an answer: the generation config's EOS ids and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def load(request: ModelRequest) -> LoadedModel:
    """Load weights and tokenizer, and route attention through the compression wrapper."""
    start = time.perf_counter()
    source = resolve(request.model)
    tokenizer = AutoTokenizer.from_pretrained(source.path, token=request.hf_token)
    dtype = torch_dtype(request.dtype, request.device)
    quantization = bitsandbytes_config(request.quantization, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        source.path,
        dtype=dtype,
        token=request.hf_token,
        attn_implementation="sdpa",
        quantization_config=quantization,
        device_map=request.device if quantization else None,
    )
    if quantization is None:
        model = model.to(request.device)
    model.eval()
    install(model)
    return LoadedModel(model, tokenizer, time.perf_counter() - start, stop_tokens(model, tokenizer))


class ModelCache:
    """Holds the last loaded model of a worker, so consecutive trials on it skip loading.

    One model at a time: a sweep is usually ordered model by model, and two resident
    models would double the memory a worker needs.
    """

    def __init__(self) -> None:
        self._request: ModelRequest | None = None
        self._loaded: LoadedModel | None = None
        self.loads = 0

    def get(self, request: ModelRequest) -> tuple[LoadedModel, bool]:
        """The model for ``request`` and whether this call had to load it."""
        if self._loaded is not None and self._request == request:
            return self._loaded, False
        self._loaded = None  # release the old weights before loading new ones
        if request.device.startswith("cuda"):
            torch.cuda.empty_cache()
        self._loaded = load(request)
        self._request = request
        self.loads += 1
        return self._loaded, True
