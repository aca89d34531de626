"""The ``sft`` and ``grpo`` workloads as the sweep core sees them (entry points ``sweeps.workloads``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from trainers.grpo import GRPOParams
from trainers.params import TrainParams
from trainers.placement import release_worker_groups
from trainers.rewards import REWARDS
from trainers.sft import SFTParams

#: what a trial's driver reserves. Ray Train schedules the workers itself, each with the sweep
#: file's ``resources``; the driver only launches and waits, so it holds no CPU (on a 2-CPU
#: machine, two 1-CPU workers must still fit) — just a little memory, which Ray needs to see
#: a non-empty reservation.
DRIVER_MEMORY = 256 * 1024**2
#: parameters the run name shows in short form, in this order
_SHORT = {"lora_r": "r", "learning_rate": "lr", "quantization": "q", "zero_stage": "zero", "num_workers": "w"}


def _short(value: object) -> str:
    """Compact values for run names: ``2e-4`` → ``0.0002``, a hub id → its model name,
    ``{boxed_match: 1, format: 0.2}`` → ``boxed_match:1,format:0.2``."""
    if isinstance(value, dict):
        return ",".join(f"{k}:{_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(_short(v) for v in value)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.rsplit("/", 1)[-1] if "/" in text else text


class _FineTuning:
    """What SFT and GRPO share: one schema, a driver trial, no actor reuse."""

    name = ""
    description = ""
    params: type[TrainParams] = TrainParams
    #: ``rewards`` is a mapping, so a list of mappings under it is an axis of reward sets
    literal_keys: frozenset[str] = frozenset({"rewards"})
    key_metrics: tuple[str, ...] = ()
    #: every trial loads its own model inside its Ray Train workers; nothing to keep
    reuse_actors = False

    @property
    def metric_directions(self) -> dict[str, str]:
        """Training metrics, each reward's mean, and the post-training evaluation (adapter and base model)."""
        from trainers import evaluation, reporting  # torch and transformers: only when asked

        out = dict(reporting.DIRECTIONS)
        out.update({f"rewards/{name}/mean": "max" for name in REWARDS})
        for prefix in ("eval_", "base_eval_"):
            out.update({prefix + metric: direction for metric, direction in evaluation.DIRECTIONS.items()})
        return out

    def schemas(self, params: Mapping[str, object]) -> list[type]:
        return [self.params]

    def resources(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict[str, float]:
        return {"cpu": 0, "memory": DRIVER_MEMORY}

    def demand(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict:
        """The driver's reservation plus the Ray Train worker group it launches (``num_workers`` × ``resources``)."""
        workers = int(params.get("num_workers", TrainParams.num_workers))  # type: ignore[call-overload]
        return {
            "driver": self.resources(params, cpu, gpu),
            "workers": {"count": workers, "param": "num_workers", "each": {"cpu": cpu, "gpu": gpu}},
        }

    def run_name(self, params: Mapping[str, object], varying: Collection[str]) -> str:
        """What varies first, then the workload: ``r16 lr0.0002 · sft`` (the model too when it varies);
        a single trial is ``sft smollm2-135m-instruct``."""
        parts = [_short(params["model"])] if "model" in varying and "model" in params else []
        parts += [f"{_SHORT[k]}{_short(params[k])}" for k in _SHORT if k in varying and k in params]
        parts += [
            f"{k}={_short(params[k])}" for k in sorted(varying) if k not in _SHORT and k != "model" and k in params
        ]
        if not parts:
            return f"{self.name} {_short(params.get('model', ''))}"
        return f"{' '.join(parts)} · {self.name}"

    def catalog(self) -> Mapping[str, Mapping[str, object]]:
        return {}

    def group_key(self, params: Mapping[str, object]) -> None:
        """Each training runs alone: trainings share no work."""
        return None

    def release(self, trial_dir: Path) -> None:
        """Give back the Ray Train worker group's CPUs/GPUs if the trial's end left them reserved."""
        release_worker_groups(trial_dir)


class SFTWorkload(_FineTuning):
    """Supervised fine-tuning with LoRA/QLoRA on Ray Train + DeepSpeed + TRL."""

    name = "sft"
    description = "Supervised fine-tuning with LoRA/QLoRA on Ray Train + DeepSpeed (TRL SFTTrainer)."
    params = SFTParams
    key_metrics = ("eval_accuracy", "eval_format_ok_rate", "eval_empty_rate", "eval_loss", "step")

    def trainable(self):
        from trainers.trainable import sft_trial

        return sft_trial


class GRPOWorkload(_FineTuning):
    """GRPO with rewards from the evaluators' scorers, LoRA/QLoRA, on Ray Train + DeepSpeed + TRL."""

    name = "grpo"
    description = "GRPO with weighted rewards from the evaluators' scorers, LoRA/QLoRA (TRL GRPOTrainer)."
    params = GRPOParams
    key_metrics = ("eval_accuracy", "eval_format_ok_rate", "reward", "step")

    def trainable(self):
        from trainers.trainable import grpo_trial

        return grpo_trial

    def catalog(self) -> Mapping[str, Mapping[str, object]]:
        """``sweeps list rewards``: each reward with what it scores (its docstring)."""
        return {"rewards": REWARDS}
