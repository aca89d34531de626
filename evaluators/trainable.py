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
from evaluators.loader import ModelCache, ModelRequest
from evaluators.measure import MB, PeakMemory
from evaluators.prompting import PromptRenderer
from evaluators.quiet import quiet_libraries
from evaluators.scoring import is_empty

GENERATIONS = "generations.jsonl"


def _device() -> str:
    """The GPU Ray gave this trial, or the CPU."""
    try:
        gpus = ray.get_gpu_ids()
    except Exception:  # not inside Ray (direct use in tests or notebooks)
        gpus = []
    return "cuda" if gpus and torch.cuda.is_available() else "cpu"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


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
        request = ModelRequest(self.params.model, self.params.dtype, self.device, self.params.hf_token)
        self.loaded, self.fresh_load = self.models.get(request)
        self.renderer = PromptRenderer(self.loaded.tokenizer, self.params.chat_template)
        self.samples = self.task.samples(self.params.samples, self.params.seed, self.renderer.length)
        self.max_new_tokens = self.params.max_new_tokens or self.task.max_new_tokens
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
        )
        answer = self.loaded.tokenizer.decode(result.token_ids, skip_special_tokens=True)
        scores = self.task.score(answer, sample)
        row = {
            "id": sample.id,
            "input_tokens": result.prompt_tokens,
            "output": answer,
            "answer": answer.strip(),
            "gold": sample.gold,
            "scores": scores,
            "empty": is_empty(answer),
            "kv_cache_tokens": _mean(result.kept_per_layer),
            "kv_cache_bytes": result.kv_cache_bytes,
            "prefill_s": result.prefill_seconds,
            "decode_s": result.decode_seconds,
            "decode_steps": len(result.positions),
            "new_tokens": len(result.token_ids),
            "seconds": time.perf_counter() - start,
            **({"meta": sample.meta} if sample.meta else {}),
        }
        self.rows.append(row)
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()
        self.index += 1
        if self.index < len(self.samples):
            return {"samples_done": self.index}
        return self._finish()

    def _finish(self) -> dict:
        self.out.close()
        rows = self.rows
        metrics: dict[str, float | None] = {
            name: _mean([r["scores"][name] for r in rows if name in r["scores"]])
            for name in self.task.metrics
        }
        prefill_s = sum(r["prefill_s"] for r in rows)
        decode_s = sum(r["decode_s"] for r in rows)
        metrics.update(
            empty_rate=_mean([float(r["empty"]) for r in rows]),
            kv_cache_mb=_mean([r["kv_cache_bytes"] / MB for r in rows]),
            kv_cache_tokens=_mean([r["kv_cache_tokens"] for r in rows]),
            prompt_tokens=_mean([float(r["input_tokens"]) for r in rows]),
            peak_memory_mb=self.memory.stop(),
            prefill_tokens_per_s=sum(r["input_tokens"] for r in rows) / prefill_s if prefill_s else None,
            decode_tokens_per_s=sum(r["decode_steps"] for r in rows) / decode_s if decode_s else None,
            seconds_per_sample=_mean([r["seconds"] for r in rows]),
            samples_done=float(len(rows)),
        )
        tags = {}
        if self.renderer.off_for_chat_model:
            tags["health.chat_template"] = "off_for_chat_model"
        return {
            **{k: v for k, v in metrics.items() if v is not None},
            "done": True,
            "_artifacts": [GENERATIONS],
            "_tags": tags,
            "_info": {
                "model_load_seconds": self.loaded.load_seconds,
                "model_loaded_by_trial": self.fresh_load,
                "model_loads_in_worker": self.models.loads,
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "device": self.device,
                "chat_template_applied": self.renderer.applied,
                "max_new_tokens": self.max_new_tokens,
                "missing_metrics": sorted(k for k, v in metrics.items() if v is None),
            },
        }
