"""Train metrics, per logging step, to whoever listens: Ray Train (then Tune and MLflow) in a sweep.

Every rank calls ``report`` at the same points (Ray Train's report is collective), with
the trainer's logs: loss, learning rate, grad norm, and for GRPO the reward mean/std per
reward function and the completion length; plus ``step`` (the global step, which goes on
after a resume) and ``tokens_per_s`` over the training steps since the last log. A held-out evaluation
that follows a training log at the same step is merged into that report, so one step is
one result for Tune's scheduler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from transformers import TrainerCallback

Report = Callable[[dict], None]
#: per-step metrics and which way is better (``learning_rate``, ``grad_norm``, ``reward_std`` and
#: completion lengths have none); GRPO's ``rewards/<name>/mean`` are higher-is-better too
DIRECTIONS = {"loss": "min", "eval_loss": "min", "train_loss": "min", "tokens_per_s": "max", "reward": "max"}
#: the trainer's end-of-training summary: kept for the trial's result, not a step of its own
_SUMMARY = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


def numeric(logs: Mapping[str, object]) -> dict[str, float]:
    """Finite numbers only: Tune and MLflow take numbers, and NaN is no measurement."""
    out = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class MetricsReporter(TrainerCallback):
    """Turns the trainer's logs into one report per logging step."""

    def __init__(self, report: Report):
        self.report = report
        self.pending: dict[str, float] | None = None
        self.summary: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._tokens: float | None = None
        self._busy = 0.0
        self._step_started = 0.0

    def _throughput(self, logs: dict[str, float]) -> None:
        """Tokens per second of training steps since the last log (evaluations and saves not counted)."""
        tokens = logs.get("num_tokens")
        if tokens is None:
            return
        if self._tokens is not None and self._busy > 0 and tokens >= self._tokens:
            logs["tokens_per_s"] = (tokens - self._tokens) / self._busy
        self._tokens, self._busy = tokens, 0.0

    def _send(self, metrics: dict[str, float]) -> None:
        self.last.update(metrics)
        self.report(metrics)

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens, self._busy = None, 0.0
        return control

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self._busy += time.perf_counter() - self._step_started
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = numeric(logs or {})
        if any(k in logs for k in _SUMMARY):
            self.summary.update({k: v for k, v in logs.items() if k in _SUMMARY})
            return control
        logs["step"] = float(state.global_step)
        is_eval = any(k.startswith("eval_") for k in logs)
        if is_eval:
            merged = {**(self.pending or {}), **logs}
            self.pending = None
            self._send(merged)
        else:
            self._throughput(logs)
            if self.pending is not None:  # an evaluation was due but logged nothing
                self._send(self.pending)
            if control.should_evaluate:
                self.pending = logs
            else:
                self._send(logs)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.pending is not None:
            self._send(self.pending)
            self.pending = None
        return control
