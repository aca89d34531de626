"""Hugging Face training arguments that SFT and GRPO share, from one trial's parameters."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from evaluators.loader import torch_dtype
from trainers.params import TrainParams
from trainers.zero import deepspeed_config


def common_arguments(params: TrainParams, output_dir: Path, device: str, deepspeed: bool = True) -> dict:
    """Keyword arguments for ``SFTConfig``/``GRPOConfig``.

    On CPUs DeepSpeed runs with its CPU accelerator, so ``use_cpu`` (which would make
    accelerate bypass DeepSpeed) is only set for a plain single-process run.
    """
    dtype = torch_dtype(params.dtype, device)
    on_gpu = device.startswith("cuda")
    cpu_deepspeed = deepspeed and not on_gpu
    if cpu_deepspeed:
        configure_cpu_deepspeed()
    return {
        "output_dir": str(output_dir),
        "max_steps": params.max_steps if params.max_steps is not None else -1,
        "num_train_epochs": params.epochs if params.epochs is not None else 1.0,
        "per_device_train_batch_size": params.batch_size,
        "gradient_accumulation_steps": params.grad_accum,
        "learning_rate": params.learning_rate,
        "logging_steps": params.logging_steps,
        "save_strategy": "steps",
        "save_steps": params.save_steps,
        "save_total_limit": 2,
        "seed": params.seed,
        "data_seed": params.seed,
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        "activation_checkpointing": params.gradient_checkpointing,
        "deepspeed": deepspeed_config(params.zero_stage, params.offload) if deepspeed else None,
        "use_cpu": not on_gpu and not deepspeed,
        # CPU workers talk over gloo; a plain single process (the overhead benchmark) has no group
        "ddp_backend": "gloo" if cpu_deepspeed else None,
        "dataloader_pin_memory": on_gpu,
        "report_to": [],
        "disable_tqdm": True,
        **({"accelerator_config": {"use_configured_state": True}} if cpu_deepspeed else {}),
    }


def configure_cpu_deepspeed() -> None:
    """Set up accelerate for DeepSpeed on CPUs, over the gloo group Ray Train already started.

    accelerate picks a collective backend only for accelerators (nccl on GPUs); on CPUs it
    leaves it unset and then counts one process, so DeepSpeed's batch-size check fails with
    two workers (``4 != 4 * 1 * 2``). Naming gloo here, before the trainer's arguments are
    built (they are told to use this state), gives the true world size.
    """
    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    if not PartialState._shared_state:
        PartialState(backend="gloo")
