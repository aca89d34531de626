"""One worker's part of a trial: load, train from the latest checkpoint, save the adapter, evaluate.

Every rank runs this with the same arguments (under Ray Train; or alone, in one process,
for the overhead benchmark). Rank 0 writes what the trial keeps: the adapter, the held-out
generations and ``train_summary.json``, which the trial's driver turns into its result.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback

from evaluators.models import resolve
from trainers import grpo, sft
from trainers.checkpoints import (
    CHECKPOINTS,
    CompleteMarker,
    checkpoint_step,
    copy_adapter,
    discard_incomplete,
    last_logs,
    latest_checkpoint,
    training_finished,
)
from trainers.data import Example
from trainers.evaluation import GENERATIONS, evaluate, summarize, write_rows
from trainers.inputs import TrainerInputs
from trainers.lora import lora_config, resolve_targets
from trainers.modeling import load_model, load_tokenizer
from trainers.params import TrainParams
from trainers.quiet import quiet_training_libraries
from trainers.reporting import MetricsReporter, Report, numeric
from trainers.templates import Renderer

ADAPTER = "adapter"
SUMMARY = "train_summary.json"

PARAMS: dict[str, type[TrainParams]] = {"sft": sft.SFTParams, "grpo": grpo.GRPOParams}
BUILDERS: dict[str, Callable] = {"sft": sft.build_trainer, "grpo": grpo.build_trainer}


@dataclass(frozen=True)
class Worker:
    """Where this process sits in the trial's worker group."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    def shard(self, items: Sequence) -> list:
        return list(items[self.rank :: self.world_size])

    def _distributed(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()

    def gather(self, rows: list[dict]) -> list[dict]:
        """Every rank's rows, on every rank, in one list."""
        if not self._distributed():
            return rows
        parts: list = [None] * self.world_size
        torch.distributed.all_gather_object(parts, rows)
        return [row for part in parts for row in part]

    def barrier(self) -> None:
        if self._distributed():
            torch.distributed.barrier()


@dataclass
class Outcome:
    """What training did, whether it ran now or had already finished before a resume."""

    global_step: int
    resumed_from_step: int
    train_seconds: float
    #: the last logged value of each training metric, and the trainer's end-of-run summary
    last: dict
    summary: dict
    lora_targets: list[str]
    #: layers holding 4-bit weights: the evidence that QLoRA trained what it says
    linear4bit_layers: int

    def info(self) -> dict:
        """The facts that go to the trial's ``info`` (the metrics go to its metrics)."""
        return {k: v for k, v in asdict(self).items() if k not in ("last", "summary")}


def _fit(
    kind: str,
    params: TrainParams,
    source: str,
    renderer: Renderer,
    train: list[Example],
    held_out: list[Example],
    trial_dir: Path,
    worker: Worker,
    report: Report,
    deepspeed: bool,
    base: dict,
) -> Outcome:
    """Train (from the latest complete checkpoint, if any) and save the adapter; returns what happened."""
    model = load_model(source, params, worker.device)
    targets = resolve_targets(model, params.targets(), model.config.model_type)
    if params.eval_base_model:
        rows = worker.gather(
            evaluate(model, renderer, worker.shard(held_out), params.answer_format, params.max_new_tokens)
        )
        base["metrics"], base["missing"] = summarize(rows, prefix="base_eval_")
        model.config.use_cache = False
    checkpoints = trial_dir / CHECKPOINTS
    if worker.rank == 0:
        discard_incomplete(checkpoints)
    worker.barrier()
    resume = latest_checkpoint(checkpoints)
    if resume is not None and training_finished(resume):
        return _finished(resume, trial_dir, worker, targets, params, model)
    reporter = MetricsReporter(report)
    inputs = TrainerInputs(
        model=model,
        renderer=renderer,
        train=train,
        held_out=held_out,
        peft_config=lora_config(targets, params.lora_r, params.lora_alpha, params.lora_dropout),
        output_dir=checkpoints,
        device=worker.device,
        callbacks=[reporter, CompleteMarker(worker.world_size)],
        deepspeed=deepspeed,
    )
    trainer = BUILDERS[kind](params, inputs)
    trainer.remove_callback(PrinterCallback)  # the reporter carries the logs; no second copy on stdout
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    trainer.save_model(str(trial_dir / ADAPTER))
    outcome = Outcome(
        global_step=trainer.state.global_step,
        resumed_from_step=checkpoint_step(resume) if resume else 0,
        train_seconds=seconds,
        last=dict(reporter.last),
        summary=dict(reporter.summary),
        lora_targets=targets,
        linear4bit_layers=_nf4_layers(model) if params.quantization else 0,
    )
    trainer.accelerator.free_memory()
    return outcome


def _finished(
    checkpoint: Path, trial_dir: Path, worker: Worker, targets: list[str], params: TrainParams, model
) -> Outcome:
    """Training had ended before the trial was cut off: keep the final checkpoint's adapter, train nothing."""
    if worker.rank == 0:
        copy_adapter(checkpoint, trial_dir / ADAPTER)
    worker.barrier()
    step = checkpoint_step(checkpoint)
    logs = numeric(last_logs(checkpoint))
    return Outcome(
        global_step=step,
        resumed_from_step=step,
        train_seconds=0.0,
        last={k: v for k, v in logs.items() if k not in ("step", "epoch")},
        summary={},
        lora_targets=targets,
        linear4bit_layers=_nf4_layers(model) if params.quantization else 0,
    )


def run(
    kind: str,
    params: TrainParams,
    train: list[Example],
    held_out: list[Example],
    trial_dir: Path,
    worker: Worker,
    report: Report,
    deepspeed: bool = True,
) -> dict:
    """The whole worker side of a trial; returns (on every rank) the final metrics.

    ``report`` gets the per-step metrics; the final ones reach the trial through the summary
    file (the trial reports them itself when it ends).
    """
    from transformers import set_seed

    quiet_training_libraries()
    set_seed(params.seed)
    source = resolve(params.model).path
    renderer = Renderer(load_tokenizer(source, params.hf_token), params.chat_template)
    base: dict = {"metrics": {}, "missing": {}}
    outcome = _fit(kind, params, source, renderer, train, held_out, trial_dir, worker, report, deepspeed, base)
    _release()

    from peft import PeftModel

    tuned = PeftModel.from_pretrained(load_model(source, params, worker.device), str(trial_dir / ADAPTER))
    rows = worker.gather(evaluate(tuned, renderer, worker.shard(held_out), params.answer_format, params.max_new_tokens))
    del tuned
    _release()
    evaluated, missing = summarize(rows)
    metrics = {
        **outcome.last,
        **outcome.summary,
        **base["metrics"],
        **evaluated,
        "step": float(outcome.global_step),
        "resumed_from_step": float(outcome.resumed_from_step),
    }
    if worker.rank == 0:
        write_rows(trial_dir / GENERATIONS, rows)
        summary = {
            "metrics": metrics,
            "missing": {**base["missing"], **missing},
            "info": {
                **outcome.info(),
                "world_size": worker.world_size,
                "device": worker.device,
                "train_rows": len(train),
                "held_out_rows": len(held_out),
                "chat_template": renderer.describe(),
            },
        }
        (trial_dir / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return metrics


def _nf4_layers(model: torch.nn.Module) -> int:
    """How many layers hold 4-bit weights: the evidence that QLoRA trained what it says."""
    import bitsandbytes as bnb

    return sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def _release() -> None:
    """Give the trainer's memory back before the next model loads (a 7B model does not fit twice).

    Also forget the trainer's DeepSpeed config: while it is registered, transformers loads any
    model ZeRO-3-partitioned, and the evaluation wants plain weights.
    """
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
