"""The Tune function trainable of the ``sft`` and ``grpo`` workloads: one trial's driver.

The driver checks what can fail cheaply — the dataset rows, the chat template on one
rendered example (kept as ``chat_example.txt``), the LoRA target names against the model's
layers — so a mistake costs seconds, not a worker group. Then it launches a Ray Train
``TorchTrainer`` with ``num_workers`` workers, each with the sweep file's ``resources``.
Ray Train schedules those workers itself (its own placement group): the driver only
waits, which is why the trial reserves no CPU (see ``trainers.workload``). The workers'
reports reach this Tune trial, and from there MLflow, through ``TuneReportCallback``; the
trial's result is rank 0's ``train_summary.json`` plus the artifacts.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from evaluators.health import health_tags
from evaluators.models import resolve
from sweeps.workload import TrialResult
from trainers.data import Example, load_examples, split
from trainers.evaluation import GENERATIONS
from trainers.failures import explain
from trainers.lora import resolve_targets, skeleton
from trainers.modeling import load_tokenizer
from trainers.params import TrainParams
from trainers.quiet import quiet_training_libraries
from trainers.run import ADAPTER, PARAMS, SUMMARY
from trainers.templates import CHAT_EXAMPLE, Renderer, write_example

TRAIN_STATE = "_train"


@dataclass
class Prepared:
    """What the driver hands to the workers after its checks passed."""

    train: list[Example]
    held_out: list[Example]
    renderer: Renderer


def dataset_file(dataset: str) -> Path:
    """A relative dataset path is relative to where the sweep was launched (Tune moves trials elsewhere)."""
    path = Path(dataset).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())) / path


def prepare(kind: str, params: TrainParams, trial_dir: Path) -> Prepared:
    """Load and split the data, check the template on one example and the LoRA targets; fail fast."""
    examples = load_examples(dataset_file(params.dataset), kind, params.gold_fields())
    train, held_out = split(examples, params.eval_fraction, params.seed)
    source = resolve(params.model).path
    renderer = Renderer(load_tokenizer(source, params.hf_token), params.chat_template)
    write_example(trial_dir / CHAT_EXAMPLE, renderer, renderer.check(train[0], kind))
    model, model_type = skeleton(source, params.hf_token)
    resolve_targets(model, params.targets(), model_type)
    return Prepared(train, held_out, renderer)


def run_trial(kind: str, config: dict) -> TrialResult:
    """Check, launch the workers, and turn rank 0's summary into the trial's result."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from trainers.worker import train_loop_per_worker

    quiet_training_libraries()
    params = PARAMS[kind].from_params(config["params"])
    context = config["context"]
    trial_dir = Path(context["trial_dir"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / SUMMARY).unlink(missing_ok=True)
    prepared = prepare(kind, params, trial_dir)

    resources = context.get("resources") or {"cpu": 1, "gpu": 0}
    use_gpu = float(resources.get("gpu", 0)) > 0
    per_worker = {"CPU": float(resources.get("cpu", 1))}
    if use_gpu:
        per_worker["GPU"] = float(resources["gpu"])
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "kind": kind,
            "params": config["params"],
            "train": [e.to_dict() for e in prepared.train],
            "held_out": [e.to_dict() for e in prepared.held_out],
            "trial_dir": str(trial_dir),
            "use_gpu": use_gpu,
            "threads": max(1, int(per_worker["CPU"])),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=params.num_workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            # A new Ray Train run per attempt: resuming is the trainer's job, from the checkpoints in trial_dir.
            name=f"{context['key']}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(trial_dir / TRAIN_STATE),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    try:
        trainer.fit()
    except Exception as error:
        explained = explain(error, trial_dir, context.get("sweep", "<sweep>"))
        if explained is error:
            raise
        raise explained from error
    return trial_result(json.loads((trial_dir / SUMMARY).read_text()), prepared.renderer)


def trial_result(summary: dict, renderer: Renderer) -> TrialResult:
    """Rank 0's summary as the trial's result: metrics, artifacts, info, health tags and missing metrics."""
    metrics = summary["metrics"]
    health = {
        "empty_rate": metrics.get("eval_empty_rate", 0.0),
        "format_ok_rate": metrics.get("eval_format_ok_rate", 1.0),
        "unfinished_thinking_rate": metrics.get("eval_unfinished_thinking_rate", 0.0),
    }
    return TrialResult(
        metrics=metrics,
        artifacts=[CHAT_EXAMPLE, GENERATIONS, ADAPTER],
        info=summary["info"],
        tags=health_tags(health, renderer.off_for_chat_model),
        missing=summary["missing"],
    )


def sft_trial(config: dict) -> TrialResult:
    """One SFT trial (Tune function trainable)."""
    return run_trial("sft", config)


def grpo_trial(config: dict) -> TrialResult:
    """One GRPO trial (Tune function trainable)."""
    return run_trial("grpo", config)
