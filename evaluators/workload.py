"""The ``evaluate`` workload as the sweep core sees it (entry point ``sweeps.workloads``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from pathlib import Path

from evaluators import config
from evaluators.kvcache import TECHNIQUES
from evaluators.summary import HEALTH_DIRECTIONS, MEASUREMENT_DIRECTIONS
from evaluators.tasks import TASKS

#: parameters the technique label and task name already show (with the technique's own fields)
_SHOWN = {"technique", "task"}


class EvaluateWorkload:
    """Prefill, compress the KV cache, decode and score, for every cell of the grid."""

    name = "evaluate"
    description = "Long-context evaluation of KV-cache techniques: prefill, compress, decode, score."
    literal_keys: frozenset[str] = frozenset({"press_args"})  # kvpress parameters: a mapping per value
    key_metrics = ("score", "empty_rate", "kv_cache_mb", "seconds_per_sample")
    reuse_actors = True

    @property
    def metric_directions(self) -> dict[str, str]:
        """Every task's metrics (one direction per name across tasks), health and measurements."""
        out = {**HEALTH_DIRECTIONS, **MEASUREMENT_DIRECTIONS}
        for task in TASKS.values():
            for metric, direction in task.directions().items():
                if out.setdefault(metric, direction) != direction:
                    raise ValueError(f"task {task.name!r} declares {metric} {direction}, another task the opposite")
        return out

    def schemas(self, params: Mapping[str, object]) -> list[type]:
        return config.schemas(params)

    def trainable(self):
        from evaluators.trainable import EvaluateTrainable

        return EvaluateTrainable

    def resources(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict[str, float]:
        return {"cpu": cpu, "gpu": gpu}

    def demand(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict:
        """A trial is one actor that holds the file's ``resources`` and launches nothing else."""
        return {"driver": self.resources(params, cpu, gpu)}

    def run_name(self, params: Mapping[str, object], varying: Collection[str]) -> str:
        """What varies first, so that a narrow column still tells trials apart; then the technique's
        constant settings. What every trial shares (the task, the model) is left out.

        E.g. with only ``cache_size`` varying: ``c256 · snapkv w32 maxpool``; with the technique too:
        ``snapkv c256 · w32 maxpool`` and ``baseline``; a single trial keeps its whole label.
        """
        _, task, technique = config.split(params)
        own = [("technique", technique.name)]
        own += [(f, f"{prefix}{getattr(technique, f)}") for f, prefix in technique.label_fields]
        shown = _SHOWN | {f.name for f in fields(technique)} | set(task.label_fields)
        groups = [
            [text for f, text in own if f in varying],
            [text for f, text in [("task", task.name), *((f, str(getattr(task, f))) for f in task.label_fields)]]
            if "task" in varying or any(f in varying for f in task.label_fields)
            else [],
            [
                f"{k}={_short(params[k])}"
                for k in sorted(varying)
                if k not in shown and params.get(k) not in (None, "", [])
            ],
            [text for f, text in own if f not in varying],
        ]
        if not any(groups[:3]):  # nothing varies: the whole label
            return " · ".join([technique.label(), task.label()])
        return " · ".join(" ".join(group) for group in groups if group)

    def catalog(self) -> Mapping[str, Mapping[str, type]]:
        return {"techniques": TECHNIQUES, "tasks": TASKS}

    def group_key(self, params: Mapping[str, object]) -> str | None:
        """Trials that differ only in compression share each sample's prefill (a technique may opt out)."""
        from evaluators.prefill_groups import group_key

        _, _, technique = config.split(params)
        return group_key(params) if technique.shares_prefill else None

    def launch_notes(self, results: Sequence[Mapping]) -> list[str]:
        """What shared prefills saved in a launch: prompt prefills run against one per trial and sample."""
        ran = [r["info"] for r in results if "group_prefills" in (r.get("info") or {})]
        if not any(info["group_size"] > 1 for info in ran):
            return []
        run = round(sum(info["group_prefills"] / info["group_size"] for info in ran))
        alone = sum(info["samples_evaluated"] for info in ran)
        largest = max(info["group_size"] for info in ran)
        return [
            f"Shared prefills: {run} prompt prefill(s) for {alone} trial-sample(s), {alone - run} saved "
            f"(trials in groups of up to {largest}; share_prefill: false runs one per trial)"
        ]

    def release(self, trial_dir: Path) -> None:
        """Nothing to give back: a trial holds only the resources Tune reserved for it."""


def _short(value: object) -> str:
    text = str(value)
    return text.rsplit("/", 1)[-1] if "/" in text else text
