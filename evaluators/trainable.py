"""The Ray Tune trainable of the evaluate workload.

A class trainable so that Tune can reuse its actor across trials (``reuse_actors`` +
``reset_config``): the loaded model stays in the worker, and a sweep over one model loads
it once per worker instead of once per trial. Each ``step`` evaluates one sample, so
progress is visible while a trial runs; the last step returns the trial's metrics.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import ray
import torch
from ray import tune

from evaluators import config as evaluate_config
from evaluators.generation import generate
from evaluators.health import canary, health_tags, visible_text
from evaluators.kvcache.base import ModelContext
from evaluators.loader import ModelCache
from evaluators.measure import MB, PeakMemory
from evaluators.prompting import PromptRenderer
from evaluators.quiet import quiet_libraries
from evaluators.scoring import is_empty, split_thinking
from evaluators.stopping import LineStop
from evaluators.summary import health_metrics, mean, measurements, task_metrics

GENERATIONS = "generations.jsonl"


def _device() -> str:
    """The GPU Ray gave this trial, or the CPU."""
    try:
        gpus = ray.get_gpu_ids()
    except Exception:  # not inside Ray (direct use in tests or notebooks)
        gpus = []
    return "cuda" if gpus and torch.cuda.is_available() else "cpu"


class EvaluateTrainable(tune.Trainable):
    """Evaluates one trial's samples with one KV-cache technique; keeps the model across trials."""

    def setup(self, config: dict) -> None:
        quiet_libraries()
        self.models = ModelCache()
        self._begin(config)

    def reset_config(self, new_config: dict) -> bool:
        self._begin(new_config)
        return True

    def _begin(self, config: dict) -> None:
        self.trial_dir = Path(config["context"]["trial_dir"])
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        self.params, self.task, self.technique = evaluate_config.split(config["params"])
        self.device = _device()
        cpus = int(self.trial_resources.required_resources.get("CPU", 0) or 0) if self.trial_resources else 0
        if cpus > 0:
            torch.set_num_threads(cpus)
        self.request = evaluate_config.model_request(self.params, self.device)
        self.loaded, self.fresh_load = self.models.get(self.request)
        if self.fresh_load:
            self.canary_answer = canary(self.loaded, self.params.chat_template, self.request.describe())
        self.renderer = PromptRenderer(self.loaded.tokenizer, self.params.chat_template)
        self.artifacts = [
            GENERATIONS,
            *self.technique.prepare(
                ModelContext(self.loaded.model, self.loaded.tokenizer, self.renderer, self.trial_dir)
            ),
        ]
        self.samples = self.task.samples(self.params.samples, self.params.seed, self.renderer.length)
        self.max_new_tokens = self.params.max_new_tokens or self.task.max_new_tokens
        self.stop = LineStop.for_tokenizer(self.loaded.tokenizer) if self.task.stop_at_newline else None
        self.index = 0
        self.rows: list[dict] = []
        self.out = (self.trial_dir / GENERATIONS).open("w")
        self.memory = PeakMemory(self.device)
        self.memory.start()

    def step(self) -> dict:
        sample = self.samples[self.index]
        start = time.perf_counter()
        rendered = self.renderer.render(sample)
        result = generate(
            self.loaded.model,
            rendered.ids,
            self.technique,
            max_new_tokens=self.max_new_tokens,
            eos_ids=self.loaded.eos_ids,
            compress_until=None if self.params.query_aware else rendered.question_start,
            kv_bits=self.params.kv_bits,
            stop=self.stop,
        )
        output = visible_text(self.loaded.tokenizer, result.token_ids)
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
            "seconds": time.perf_counter() - start,
            **({"details": scored.details} if scored.details else {}),
            **({"meta": sample.meta} if sample.meta else {}),
        }
        self.rows.append(row)
        self.out.write(json.dumps(row, default=str) + "\n")
        self.out.flush()
        self.index += 1
        if self.index < len(self.samples):
            return {"samples_done": self.index}
        return self._finish()

    def _finish(self) -> dict:
        self.out.close()
        metrics, missing = task_metrics(self.rows, self.task.metrics)
        metrics.update(health_metrics(self.rows))
        budget = getattr(self.technique, "cache_size", None)
        metrics.update(measurements(self.rows, self.memory.stop(), budget_tokens=budget))
        metrics["model_memory_mb"] = self.loaded.model.get_memory_footprint() / MB
        return {
            **metrics,
            "done": True,
            "_artifacts": self.artifacts,
            "_missing": missing,
            "_tags": health_tags(metrics, self.renderer.off_for_chat_model),
            "_info": {
                "model_load_seconds": self.loaded.load_seconds,
                "model_loaded_by_trial": self.fresh_load,
                "model_loads_in_worker": self.models.loads,
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "device": self.device,
                "weights": self.request.describe(),
                "chat_template_applied": self.renderer.applied,
                "max_new_tokens": self.max_new_tokens,
            },
        }

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Nothing to save: an evaluation that is interrupted starts its samples again."""

    def load_checkpoint(self, checkpoint: object) -> None:
        """See ``save_checkpoint``."""
