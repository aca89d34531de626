"""GRPO: the ``grpo`` workload's parameters and its TRL trainer.

Each prompt gets ``num_generations`` sampled completions, scored by the rewards the sweep
file selects and weights (``trainers.rewards``); the advantages are the rewards relative
to the prompt's group. With LoRA, the reference model for the KL term (``beta``) is the
base model with the adapter switched off — no second copy of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from trainers.params import TrainParams
from trainers.rewards import REWARDS, build_rewards, needed_fields

if TYPE_CHECKING:
    from trainers.inputs import TrainerInputs


def _default_rewards() -> dict[str, float]:
    return {"boxed_match": 1.0, "format": 0.2}


@dataclass
class GRPOParams(TrainParams):
    """GRPO trials: the shared parameters, plus sampling and the weighted rewards."""

    #: completions sampled per prompt, compared with each other for the advantages (at least 2)
    num_generations: int = 4
    #: tokens generated per completion at most
    max_completion_length: int = 64
    #: weight of the KL penalty against the base model (0: none)
    beta: float = 0.04
    #: sampling temperature of the completions
    temperature: float = 1.0
    #: the weight of each reward by name (see sweeps list rewards); a completion's reward is their weighted sum
    rewards: dict[str, float] = field(default_factory=_default_rewards)
    #: optimizer step size (GRPO's default is lower than SFT's)
    learning_rate: float = 1e-5

    kind: ClassVar[str] = "grpo"

    def gold_fields(self) -> tuple[str, ...]:
        return needed_fields(self.rewards)

    def check(self) -> list[tuple]:
        problems = super().check()
        if not self.rewards:
            problems.append(("rewards", f"name at least one reward: {', '.join(REWARDS.names())}"))
        problems += [("rewards", REWARDS.unknown(name).text()) for name in self.rewards if name not in REWARDS]
        if self.num_generations < 2:
            problems.append(
                ("num_generations", f"GRPO compares at least 2 completions per prompt, got {self.num_generations}")
            )
        elif (self.batch_size * self.num_workers * self.grad_accum) % self.num_generations:
            problems.append(
                (
                    "num_generations",
                    f"must divide batch_size x num_workers x grad_accum "
                    f"({self.batch_size} x {self.num_workers} x {self.grad_accum}): each step scores whole groups "
                    f"of {self.num_generations} completions per prompt",
                )
            )
        if self.max_completion_length < 1:
            problems.append(("max_completion_length", f"must be at least 1, got {self.max_completion_length}"))
        if self.beta < 0:
            problems.append(("beta", f"must not be negative, got {self.beta}"))
        if self.temperature <= 0:
            problems.append(("temperature", f"must be positive (GRPO samples), got {self.temperature}"))
        return problems


def build_trainer(params: GRPOParams, inputs: TrainerInputs):
    """TRL's GRPOTrainer for this trial; the held-out rewards are evaluated only when ``eval_steps`` is set."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from trainers.arguments import common_arguments

    funcs, weights = build_rewards(
        params.rewards, params.answer_format, params.max_completion_length, inputs.renderer.opens_thinking
    )
    evaluating = params.eval_steps is not None
    args = GRPOConfig(
        **common_arguments(params, inputs.output_dir, inputs.device, inputs.deepspeed),
        num_generations=params.num_generations,
        max_completion_length=params.max_completion_length,
        beta=params.beta,
        temperature=params.temperature,
        reward_weights=weights,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=params.eval_steps,
        per_device_eval_batch_size=params.num_generations,
    )
    return GRPOTrainer(
        model=inputs.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=Dataset.from_list([inputs.renderer.grpo_row(e) for e in inputs.train]),
        eval_dataset=Dataset.from_list([inputs.renderer.grpo_row(e) for e in inputs.held_out]) if evaluating else None,
        processing_class=inputs.renderer.tokenizer,
        peft_config=inputs.peft_config,
        callbacks=inputs.callbacks,
    )
