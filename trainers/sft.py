"""Supervised fine-tuning: the ``sft`` workload's parameters and its TRL trainer.

Rows become prompt-completion pairs, so the loss covers the assistant's answer only (the
prompt is masked, as the chat-template check verified on one example). The held-out split
gives ``eval_loss`` every ``eval_steps`` — the metric an ASHA scheduler stops trials on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainers.data import Example
from trainers.params import TrainParams

if TYPE_CHECKING:  # the trainer stack loads inside workers, not when a sweep file is validated
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from trainers.templates import Renderer


@dataclass
class SFTParams(TrainParams):
    """SFT trials: the shared parameters, plus whether the loss covers the prompt too."""

    #: train on the answer only (true) or on prompt and answer (false)
    completion_only_loss: bool = True


def build_trainer(
    params: SFTParams,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    renderer: Renderer,
    train: list[Example],
    held_out: list[Example],
    peft_config: LoraConfig,
    output_dir: Path,
    device: str,
    callbacks: list[TrainerCallback],
    deepspeed: bool = True,
):
    """TRL's SFTTrainer for this trial."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainers.arguments import common_arguments

    args = SFTConfig(
        **common_arguments(params, output_dir, device, deepspeed),
        per_device_eval_batch_size=params.batch_size,
        eval_strategy="steps",
        eval_steps=params.eval_steps or params.save_steps,
        max_length=params.max_length,
        completion_only_loss=params.completion_only_loss,
        packing=False,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([renderer.sft_row(e) for e in train]),
        eval_dataset=Dataset.from_list([renderer.sft_row(e) for e in held_out]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
