"""Parameters every fine-tuning trial shares: model, data, schedule, distribution and LoRA.

The sweep core validates a trial's flat parameters against these dataclasses (types from
the hints, cross-field rules from ``check()``) before anything starts, so ``quantization:
int4``, ``zero_stage: 4`` or a broken dataset row fails at `sweeps plan`, not in a worker.
SFT and GRPO extend this class with their own fields (``trainers.sft``, ``trainers.grpo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

from evaluators.models import describe_problem
from trainers.data import DataError, load_examples, split

ANSWER_FORMATS = ("boxed", "json")


@dataclass
class TrainParams:
    """What to fine-tune on which data, how long, on how many workers, with which adapter."""

    #: hub id, local folder, GGUF file, or smollm2-135m-instruct
    model: str
    #: a JSON Lines file of training rows (messages, or prompt and completion; GRPO: prompt and gold fields)
    dataset: str
    #: fraction of the rows held out for evaluation, split deterministically by seed
    eval_fraction: float = 0.1
    #: optimizer steps to train for (give this or epochs)
    max_steps: int | None = None
    #: passes over the training rows (give this or max_steps; neither: one epoch)
    epochs: float | None = None
    #: examples (SFT) or completions (GRPO) per worker per step
    batch_size: int = 4
    #: steps whose gradients are accumulated into one optimizer step
    grad_accum: int = 1
    #: optimizer step size
    learning_rate: float = 2e-4
    #: Ray Train workers per trial; each gets the sweep file's ``resources``
    num_workers: int = 1
    #: DeepSpeed ZeRO stage: what the workers partition (1: optimizer state, 2: and gradients, 3: and weights)
    zero_stage: Literal[0, 1, 2, 3] = 2
    #: keep the optimizer state (and at stage 3 the weights) on the CPU; needs a ZeRO stage of 1 or more
    offload: bool = False
    #: LoRA rank
    lora_r: int = 16
    #: LoRA scaling numerator: the adapter's update is scaled by lora_alpha / lora_r
    lora_alpha: int = 32
    #: dropout on the adapter's input
    lora_dropout: float = 0.05
    #: ``auto`` (by architecture), or the names of the linear layers to adapt
    target_modules: str | list[str] = "auto"
    #: 4: QLoRA, the base weights in NF4 through bitsandbytes; null: full-precision base weights
    quantization: Literal[4] | None = None
    #: steps between checkpoints, which a resumed trial continues from
    save_steps: int = 50
    #: steps between evaluations of the held-out loss (default: save_steps)
    eval_steps: int | None = None
    #: steps between logged training metrics
    logging_steps: int = 1
    #: tokens of an SFT example at most; longer ones are cut
    max_length: int = 512
    #: tokens generated per held-out prompt in the post-training evaluation
    max_new_tokens: int = 64
    #: how answers are written, for the evaluation and the rewards: boxed (\boxed{}) or json
    answer_format: Literal["boxed", "json"] = "boxed"
    #: auto applies the tokenizer's chat template when it has one; on requires one; off renders plain text
    chat_template: Literal["auto", "on", "off"] = "auto"
    #: also evaluate the base model before training (reported as ``base_eval_*``)
    eval_base_model: bool = False
    #: recompute activations in the backward pass, trading time for memory
    gradient_checkpointing: bool = False
    #: seed of the held-out split, the adapter's initialization and the data order
    seed: int = 0
    #: weights' dtype; auto is bfloat16 on GPUs and float32 on CPUs
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: token for gated models (prefer the HF_TOKEN variable); never shown, logged or stored
    hf_token: str | None = field(default=None, repr=False)  # out of the repr, so no log line shows it

    #: the JSONL kind this trainer reads (``sft`` or ``grpo``)
    kind: ClassVar[str] = "sft"

    def gold_fields(self) -> tuple[str, ...]:
        """Row fields every example must carry (GRPO: those its rewards score against)."""
        return ()

    def check(self) -> list[tuple]:
        problems: list[tuple] = []
        positive = ("batch_size", "grad_accum", "num_workers", "lora_r", "lora_alpha", "save_steps", "logging_steps")
        for name in (*positive, "max_length", "max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append((name, f"must be at least 1, got {getattr(self, name)}"))
        for name in ("max_steps", "eval_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append((name, f"must be at least 1, got {getattr(self, name)}"))
        if self.max_steps is not None and self.epochs is not None:
            problems.append(("epochs", "give max_steps or epochs, not both"))
        if self.epochs is not None and self.epochs <= 0:
            problems.append(("epochs", f"must be positive, got {self.epochs}"))
        if self.learning_rate < 0:
            problems.append(("learning_rate", f"must not be negative, got {self.learning_rate}"))
        if not 0 < self.eval_fraction < 1:
            problems.append(("eval_fraction", f"must be between 0 and 1 (exclusive), got {self.eval_fraction}"))
        if not 0 <= self.lora_dropout < 1:
            problems.append(("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}"))
        if self.offload and self.zero_stage == 0:
            problems.append(("offload", "CPU offload needs ZeRO: set zero_stage to 1, 2 or 3"))
        if not self.target_modules:
            problems.append(("target_modules", "an empty list trains nothing; use auto or name the layers"))
        problem = describe_problem(self.model)
        if problem:
            problems.append(("model", problem))
        problems += self._check_dataset()
        return problems

    def _check_dataset(self) -> list[tuple]:
        try:
            examples = load_examples(self.dataset, self.kind, self.gold_fields())
        except DataError as exc:
            return [("dataset", str(exc))]
        if not 0 < self.eval_fraction < 1:
            return []
        train, held_out = split(examples, self.eval_fraction, self.seed)
        if not train:
            return [("eval_fraction", f"leaves no training rows out of {len(examples)}")]
        return []

    def targets(self) -> str | list[str]:
        """``auto``, or the layer names (one name given as a string is a list of one)."""
        if isinstance(self.target_modules, str) and self.target_modules != "auto":
            return [self.target_modules]
        return self.target_modules

    @classmethod
    def from_params(cls, params: dict) -> TrainParams:
        """Build from a trial's (already validated) flat parameters."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})
