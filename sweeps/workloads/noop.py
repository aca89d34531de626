"""The ``noop`` workload: trials that do no model work, to measure what the platform itself costs.

A trial sleeps ``seconds`` (0 by default) and returns ``loss = (x - 1)²`` from its parameter
``x``: a value the tests can predict, and a grid of any size (``x: [0, 1, ..., 499]``) that
costs nothing to run. ``benchmarks/driver_scale.py`` runs hundreds of them through the
platform and through bare Ray Tune. Like any workload it imports nothing from ``sweeps``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.workload import TrialResult


@dataclass
class NoopParams:
    """A point ``x`` and how long the trial pretends to work."""

    #: the point the trial evaluates: it reports loss = (x - 1)^2
    x: float = 0.0
    #: seconds the trial sleeps before it returns (0: as fast as the platform goes)
    seconds: float = 0.0

    def check(self) -> list[tuple[str, str]]:
        if not 0 <= self.seconds <= 3600:
            return [("seconds", f"must be between 0 and 3600, got {self.seconds}")]
        return []


def loss(x: float) -> float:
    """The metric a noop trial reports for ``x``: a bowl with its minimum 0 at x = 1."""
    return (x - 1.0) ** 2


def noop_trial(config: Mapping[str, Any]) -> TrialResult:
    """Run one trial: sleep, then return its metrics."""
    params = config["params"]
    seconds = float(params.get("seconds", NoopParams.seconds))
    if seconds:
        time.sleep(seconds)
    return TrialResult(metrics={"loss": loss(float(params.get("x", NoopParams.x))), "slept_s": seconds})


class NoopWorkload:
    """Trials that only sleep and return a metric: the platform's own overhead, measured alone."""

    name = "noop"
    description = "No model work: sleeps `seconds` and reports loss = (x - 1)^2 (benchmarks and tests)."
    literal_keys: frozenset[str] = frozenset()
    key_metrics = ("loss",)
    metric_directions: Mapping[str, str] = {"loss": "min"}
    #: a function trainable holds nothing worth keeping, but reusing its actor skips starting a new one
    reuse_actors = True

    def schemas(self, params: Mapping[str, object]) -> list[type]:
        return [NoopParams]

    def trainable(self):
        return noop_trial

    def resources(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict[str, float]:
        return {"cpu": cpu, "gpu": gpu}

    def demand(self, params: Mapping[str, object], cpu: float, gpu: float) -> dict:
        """A trial is one actor with the file's ``resources``; it launches nothing else."""
        return {"driver": self.resources(params, cpu, gpu)}

    def run_name(self, params: Mapping[str, object], varying: Collection[str]) -> str:
        """E.g. ``noop x=3``: the workload, then each parameter that varies."""
        shown = [f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in sorted(varying)]
        return " ".join(["noop", *shown])

    def catalog(self) -> Mapping[str, Mapping[str, type]]:
        return {}

    def group_key(self, params: Mapping[str, object]) -> None:
        """Noop trials share no work: each runs alone."""
        return None

    def release(self, trial_dir: Path) -> None:
        """Nothing to give back: a trial holds only what Tune reserved for it."""
