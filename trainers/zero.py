"""The DeepSpeed configuration of a trial: ZeRO stage and CPU offload from the sweep file.

Batch sizes, gradient clipping and precision stay ``auto`` so the Hugging Face trainer
fills them from the same parameters it trains with: one source of truth. With offload,
DeepSpeed's own AdamW runs the optimizer step on the CPU (DeepSpeedCPUAdam); without,
the trainer's AdamW is used as it is.
"""

from __future__ import annotations


def deepspeed_config(stage: int, offload: bool) -> dict:
    """A config for ``TrainingArguments(deepspeed=...)``."""
    zero: dict = {"stage": stage}
    if stage >= 2:
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if stage == 3:
        # Save the adapter as plain tensors: gathered from the shards, not per-rank pieces.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    config: dict = {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        }
    return config
