"""What the SFT and GRPO trainers are both built from, beside the trial's parameters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainers.data import Example

if TYPE_CHECKING:  # the trainer stack loads inside workers, not when a sweep file is validated
    from peft import LoraConfig
    from transformers import PreTrainedModel, TrainerCallback

    from trainers.templates import Renderer


@dataclass
class TrainerInputs:
    """One worker's model and data, the LoRA to add, where checkpoints go and how it runs."""

    model: PreTrainedModel
    #: the tokenizer with its chat template: renders the rows and is the trainer's processing class
    renderer: Renderer
    train: list[Example]
    held_out: list[Example]
    peft_config: LoraConfig
    output_dir: Path
    device: str
    callbacks: list[TrainerCallback]
    #: False only for the overhead benchmark's bare-TRL baseline
    deepspeed: bool = True
