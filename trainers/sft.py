"""Supervised fine-tuning: the ``sft`` workload's parameters and its TRL trainer.

Rows become prompt-completion pairs, so the loss covers the assistant's answer only (the
prompt is masked, as the chat-template check verified on one example). The held-out split
gives ``eval_loss`` every ``eval_steps`` — the metric an ASHA scheduler stops trials on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainers.params import TrainParams

if TYPE_CHECKING:
    from trainers.inputs import TrainerInputs


@dataclass
class SFTParams(TrainParams):
    """SFT trials: the shared parameters, plus whether the loss covers the prompt too."""

    #: train on the answer only (true) or on prompt and answer (false)
    completion_only_loss: bool = True


def build_trainer(params: SFTParams, inputs: TrainerInputs):
    """TRL's SFTTrainer for this trial."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainers.arguments import common_arguments

    args = SFTConfig(
        **common_arguments(params, inputs.output_dir, inputs.device, inputs.deepspeed),
        per_device_eval_batch_size=params.batch_size,
        eval_strategy="steps",
        eval_steps=params.eval_steps or params.save_steps,
        max_length=params.max_length,
        completion_only_loss=params.completion_only_loss,
        packing=False,
    )
    return SFTTrainer(
        model=inputs.model,
        args=args,
        train_dataset=Dataset.from_list([inputs.renderer.sft_row(e) for e in inputs.train]),
        eval_dataset=Dataset.from_list([inputs.renderer.sft_row(e) for e in inputs.held_out]),
        processing_class=inputs.renderer.tokenizer,
        peft_config=inputs.peft_config,
        callbacks=inputs.callbacks,
    )
