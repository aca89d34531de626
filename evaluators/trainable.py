"""The Ray Tune trainable of the evaluate workload.

A class trainable so that Tune can reuse its actor across trials (``reuse_actors`` +
``reset_config``): the loaded model stays in the worker, and a sweep over one model loads
it once per worker instead of once per trial. It runs a trial group: trials that differ only
in KV-cache compression, each sample prefilled once for all of them
(:mod:`evaluators.shared_prefill`), each member writing its own generations and result. A
member that fails (its technique's preparation or its own work on a sample) fails alone.
Each ``step`` evaluates one sample, so progress is visible while the group runs; the last
step returns every member's metrics.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import ray
from ray import tune

from evaluators import config as evaluate_config
from evaluators.config import EvaluateConfig
from evaluators.kvcache.base import KVTechnique, ModelContext
from evaluators.lazy import lazy_module
from evaluators.measure import MB, PeakMemory
from evaluators.quiet import quiet_libraries
from evaluators.scoring import is_empty, split_thinking
from evaluators.summary import health_metrics, mean, measurements, task_metrics
from sweeps.workload import GroupResult, TrialResult

if TYPE_CHECKING:
    import torch

    from evaluators import generation, health, loader, prompting, shared_prefill, stopping
else:
    # The model work's modules (torch, transformers) are imported in the worker when a trial first
    # runs: the launcher imports this module only to hand the class to Tune, and importing them
    # there cost it ~10 s of a 2-CPU machine before the sweep could start.
    torch = lazy_module("torch")
    generation = lazy_module("evaluators.generation")
    health = lazy_module("evaluators.health")
    loader = lazy_module("evaluators.loader")
    prompting = lazy_module("evaluators.prompting")
    shared_prefill = lazy_module("evaluators.shared_prefill")
    stopping = lazy_module("evaluators.stopping")

GENERATIONS = "generations.jsonl"


def _device() -> str:
    """The GPU Ray gave this trial, or the CPU."""
    try:
        gpus = ray.get_gpu_ids()
    except Exception:  # not inside Ray (direct use in tests or notebooks)
        gpus = []
    return "cuda" if gpus and torch.cuda.is_available() else "cpu"


@dataclass
class MemberRun:
    """One trial of the group while it runs: its own settings, technique, folder and generations."""

    key: str
    trial_dir: Path
    settings: EvaluateConfig
    technique: KVTechnique
    artifacts: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    out: IO[str] | None = None
    #: why this member failed; it takes no further part in the group
    error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        if self.out is not None:
            self.out.close()


class EvaluateTrainable(tune.Trainable):
    """Evaluates a trial group's samples, one prefill per sample for all members; keeps the model across trials."""

    def setup(self, config: dict) -> None:
        quiet_libraries()
        self.models = loader.ModelCache()
        self._begin(config)

    def reset_config(self, new_config: dict) -> bool:
        self._begin(new_config)
        return True

    def _begin(self, config: dict) -> None:
        trials = config.get("members") or [config]
        # members agree on everything but compression (their group key): the first one's settings
        # choose the model, the task and its samples for all
        self.settings, self.task, _ = evaluate_config.split(trials[0]["params"])
        self.device = _device()
        cpus = int(self.trial_resources.required_resources.get("CPU", 0) or 0) if self.trial_resources else 0
        if cpus > 0:
            torch.set_num_threads(cpus)
        self.request = evaluate_config.model_request(self.settings, self.device)
        self.loaded, self.fresh_load = self.models.get(self.request)
        if self.fresh_load:
            self.canary_answer = health.canary(self.loaded, self.settings.chat_template, self.request.describe())
        self.renderer = prompting.PromptRenderer(self.loaded.tokenizer, self.settings.chat_template)
        self.members = [self._member(trial) for trial in trials]
        self.samples = self.task.samples(self.settings.samples, self.settings.seed, self.renderer.length)
        self.max_new_tokens = self.settings.max_new_tokens or self.task.max_new_tokens
        self.stop = stopping.LineStop.for_tokenizer(self.loaded.tokenizer) if self.task.stop_at_newline else None
        self.index = 0
        self.prefills = 0
        self.memory = PeakMemory(self.device)
        self.memory.start()

    def _member(self, trial: dict) -> MemberRun:
        trial_dir = Path(trial["context"]["trial_dir"])
        trial_dir.mkdir(parents=True, exist_ok=True)
        settings, _, technique = evaluate_config.split(trial["params"])
        member = MemberRun(trial["context"]["key"], trial_dir, settings, technique)
        try:
            context = ModelContext(self.loaded.model, self.loaded.tokenizer, self.renderer, trial_dir)
            member.artifacts = [GENERATIONS, *technique.prepare(context)]
            member.out = (trial_dir / GENERATIONS).open("w")
        except Exception as exc:  # this member fails alone (a head pattern that does not fit the model, ...)
            member.fail(exc)
        return member

    def _generate(self, active: list[MemberRun], ids: list[int], compress_until: int | None) -> list:
        """Each active member's Generation (or the exception that failed it) for one prompt."""
        shareable = len(active) > 1 and all(m.technique.shares_prefill for m in active)
        settings = {"max_new_tokens": self.max_new_tokens, "eos_ids": self.loaded.eos_ids, "stop": self.stop}
        if shareable:
            group = shared_prefill.generate_group(
                self.loaded.model,
                ids,
                [shared_prefill.Member(m.technique, m.settings.kv_bits) for m in active],
                compress_until=compress_until,
                # on an H200, batched decoding measured 2.6x slower than one by one (README, Trial groups)
                batch_decode=self.device == "cpu" if self.settings.batch_decode is None else self.settings.batch_decode,
                **settings,
            )
            self.prefills += group.prefill_forwards
            return [group.failures.get(i) or group.members[i] for i in range(len(active))]
        outcomes: list = []
        for member in active:
            try:
                outcomes.append(
                    generation.generate(
                        self.loaded.model,
                        ids,
                        member.technique,
                        compress_until=compress_until,
                        kv_bits=member.settings.kv_bits,
                        **settings,
                    )
                )
                self.prefills += 1
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def step(self) -> dict | GroupResult:
        sample = self.samples[self.index]
        start = time.perf_counter()
        rendered = self.renderer.render(sample)
        active = [m for m in self.members if m.error is None]
        compress_until = None if self.settings.query_aware else rendered.question_start
        outcomes = self._generate(active, rendered.ids, compress_until) if active else []
        shared_seconds = (time.perf_counter() - start) / max(1, len(active))
        for member, outcome in zip(active, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                member.fail(outcome)
                continue
            try:
                self._record(member, sample, outcome, shared_seconds)
            except Exception as exc:
                member.fail(exc)
        self.index += 1
        if self.index < len(self.samples):
            return {"samples_done": self.index}
        return self._finish()

    def _record(self, member: MemberRun, sample, result: generation.Generation, shared_seconds: float) -> None:
        """Score one member's output on a sample and append its row to its own generations file."""
        start = time.perf_counter()
        output = health.visible_text(self.loaded.tokenizer, result.token_ids)
        thinking = split_thinking(output, self.renderer.opens_thinking)
        scored = self.task.score(thinking.answer, sample)
        thinking_tokens = (
            len(self.loaded.tokenizer(thinking.thinking, add_special_tokens=False)["input_ids"])
            if thinking.present
            else None
        )
        row = {
            "id": sample.id,
            "input_tokens": result.prompt_tokens,
            "output": output,
            "answer": thinking.answer,
            "extracted": scored.extracted,
            "gold": sample.gold,
            "scores": scored.scores,
            "missing": scored.missing,
            "format_ok": scored.format_ok,
            "empty": is_empty(thinking.answer),
            "thinking_tokens": thinking_tokens,
            "unfinished_thinking": thinking.unfinished,
            "kv_cache_tokens": mean(result.kept_per_layer),
            "kv_cache_bytes": result.kv_cache_bytes,
            "kv_quant_meta_bytes": result.kv_quant_meta_bytes,
            "prefill_s": result.prefill_seconds,
            "decode_s": result.decode_seconds,
            "decode_steps": len(result.positions),
            "new_tokens": len(result.token_ids),
            "stopped_by_eos": result.stopped_by_eos,
            # alone: the whole sample; in a group: its share of the sample's shared work, plus its own scoring
            "seconds": shared_seconds + time.perf_counter() - start,
            **({"details": scored.details} if scored.details else {}),
            **({"meta": sample.meta} if sample.meta else {}),
        }
        member.rows.append(row)
        assert member.out is not None
        member.out.write(json.dumps(row, default=str) + "\n")
        member.out.flush()

    def _finish(self) -> GroupResult:
        peak_mb = self.memory.stop()
        outcome = GroupResult()
        for member in self.members:
            if member.error is not None:
                outcome.failures[member.key] = member.error
                continue
            try:
                outcome.results[member.key] = self._result(member, peak_mb)
            except Exception as exc:
                outcome.failures[member.key] = exc
        return outcome

    def _result(self, member: MemberRun, peak_mb: float) -> TrialResult:
        assert member.out is not None
        member.out.close()
        metrics, missing = task_metrics(member.rows, self.task.metrics)
        metrics.update(health_metrics(member.rows))
        budget = getattr(member.technique, "cache_size", None)
        metrics.update(measurements(member.rows, peak_mb, budget_tokens=budget))
        metrics["model_memory_mb"] = self.loaded.model.get_memory_footprint() / MB
        return TrialResult(
            metrics=metrics,
            artifacts=member.artifacts,
            missing=missing,
            tags=health.health_tags(metrics, self.renderer.off_for_chat_model),
            info={
                "model_load_seconds": self.loaded.load_seconds,
                "model_loaded_by_trial": self.fresh_load,
                "model_loads_in_worker": self.models.loads,
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "device": self.device,
                "weights": self.request.describe(),
                "chat_template_applied": self.renderer.applied,
                "max_new_tokens": self.max_new_tokens,
                # the trials that shared this one's prefills (itself included), and the prompt
                # prefills the whole group ran: alone, each of them would have run `samples`
                "group_size": len(self.members),
                "group_prefills": self.prefills,
                "samples_evaluated": len(member.rows),
            },
        )

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Nothing to save: an evaluation that is interrupted starts its samples again."""

    def load_checkpoint(self, checkpoint: object) -> None:
        """See ``save_checkpoint``."""
