"""Silence library chatter that tells the user nothing, at its source.

Each line here answers a specific message: DeepSpeed warns that it "falls back" to the
CPU when nobody told it which accelerator to use, so we tell it; transformers draws a
weight-loading progress bar per trial into worker logs, which for a cached model is
noise between the platform's own progress. LLM.int8 announces, once per layer, that it
computes in float16 — which is what LLM.int8 is.
"""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    """Configure libraries once per process before models are loaded."""
    import torch
    from transformers.utils import logging as hf_logging

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    hf_logging.disable_progress_bar()
    # LLM.int8 computes in float16 by design; bitsandbytes repeats this for every layer.
    warnings.filterwarnings("ignore", message=r"MatMul8bitLt: inputs will be cast")
