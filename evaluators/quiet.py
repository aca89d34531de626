"""Silence library chatter that tells the user nothing, at its source.

Each line here answers a specific message: DeepSpeed warns that it "falls back" to the
CPU when nobody told it which accelerator to use, so we tell it; transformers draws a
weight-loading progress bar per trial into worker logs, which for a cached model is
noise between the platform's own progress. LLM.int8 announces, once per layer, that it
computes in float16 — which is what LLM.int8 is. bitsandbytes, imported on a CPU with
AVX512-BF16, tries to download an optional fused NF4 kernel from the Hugging Face hub
("Failed to load CPU gemm_4bit_forward from kernels-community …") and, when it cannot, uses
its own CPU kernels — the ones every CPU without AVX512-BF16 uses; nothing is wrong.
"""

from __future__ import annotations

import logging
import os
import warnings

#: the logger of bitsandbytes' CPU kernels, and the start of its optional-kernel notice
BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class DropMessages(logging.Filter):
    """Drops a logger's records whose message starts with one of ``prefixes``; keeps the rest."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_bitsandbytes_import() -> None:
    """Drop bitsandbytes' optional-kernel notice; idempotent. It is logged when bitsandbytes is
    imported (PEFT and TRL import it), so ``evaluators`` and ``trainers`` call this as packages."""
    logger = logging.getLogger(BNB_CPU_LOGGER)
    if not any(isinstance(f, DropMessages) for f in logger.filters):
        logger.addFilter(DropMessages(BNB_KERNEL_NOTICE))


def quiet_libraries() -> None:
    """Configure libraries once per process before models are loaded."""
    quiet_bitsandbytes_import()
    import torch
    from transformers.utils import logging as hf_logging

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    hf_logging.disable_progress_bar()
    # LLM.int8 computes in float16 by design; bitsandbytes repeats this for every layer.
    warnings.filterwarnings("ignore", message=r"MatMul8bitLt: inputs will be cast")
