"""From per-sample rows to a trial's metrics: averages over the samples that have each metric.

A metric no sample could produce is reported missing with its reason — never as NaN
averaged into a table, never as 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from evaluators.measure import MB

#: output health: which way is better (``thinking_tokens`` has no better direction)
HEALTH_DIRECTIONS = {"empty_rate": "min", "format_ok_rate": "max", "unfinished_thinking_rate": "min"}
#: measurements: memory and time are lower-is-better, throughput higher-is-better
MEASUREMENT_DIRECTIONS = {
    "kv_cache_mb": "min",
    "kv_quant_meta_mb": "min",
    "kv_cache_tokens": "min",
    "kv_budget_tokens": "min",
    "peak_memory_mb": "min",
    "prefill_tokens_per_s": "max",
    "decode_tokens_per_s": "max",
    "seconds_per_sample": "min",
}


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def task_metrics(rows: Sequence[dict], declared: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Average each task metric over the samples that have it; give a reason for those none have.

    ``score`` is the task's own, or else its primary metric (the first it declares), so a table
    or an MLflow comparison across tasks has one column to read; missing stays missing, with the reason.
    """
    names = list(dict.fromkeys([*declared, *(k for r in rows for k in r["scores"])]))
    metrics: dict[str, float] = {}
    missing: dict[str, str] = {}
    for name in names:
        values = [r["scores"][name] for r in rows if name in r["scores"]]
        if values:
            metrics[name] = sum(values) / len(values)
            continue
        reasons = Counter(r["missing"][name] for r in rows if name in r.get("missing", {}))
        missing[name] = reasons.most_common(1)[0][0] if reasons else "no sample produced this metric"
    primary = declared[0] if declared else None
    if primary and "score" not in names:  # a task that computes its own score keeps it
        if primary in metrics:
            metrics["score"] = metrics[primary]
        elif primary in missing:
            missing["score"] = missing[primary]
    return metrics, missing


def health_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """Output health over all samples: empty, unformatted and unfinished-thinking rates."""
    out = {
        "empty_rate": mean([float(r["empty"]) for r in rows]),
        "format_ok_rate": mean([float(r["format_ok"]) for r in rows]),
        "unfinished_thinking_rate": mean([float(r["unfinished_thinking"]) for r in rows]),
    }
    thinking = [float(r["thinking_tokens"]) for r in rows if r["thinking_tokens"] is not None]
    if thinking:
        out["thinking_tokens"] = mean(thinking)
    return {k: v for k, v in out.items() if v is not None}


def measurements(rows: Sequence[dict], peak_memory_mb: float, *, budget_tokens: int | None) -> dict[str, float]:
    """Cache size, memory and speed of the trial.

    ``budget_tokens``: the tokens per layer the technique may keep (its ``cache_size``), or None
    for one that keeps the whole prompt, whose budget is then the prompt's length. Every trial
    reports it (``kv_budget_tokens``) beside what it kept (``kv_cache_tokens``), so trials with
    and without a ``cache_size`` share one memory axis.
    """
    prompt_tokens = mean([float(r["input_tokens"]) for r in rows])
    prefill_s = sum(r["prefill_s"] for r in rows)
    decode_s = sum(r["decode_s"] for r in rows)
    decode_steps = sum(r["decode_steps"] for r in rows)
    out = {
        "kv_cache_mb": mean([r["kv_cache_bytes"] / MB for r in rows]),
        "kv_quant_meta_mb": mean([r["kv_quant_meta_bytes"] / MB for r in rows if r["kv_quant_meta_bytes"]]),
        "kv_cache_tokens": mean([r["kv_cache_tokens"] for r in rows]),
        "kv_budget_tokens": float(budget_tokens) if budget_tokens is not None else prompt_tokens,
        "prompt_tokens": prompt_tokens,
        "peak_memory_mb": peak_memory_mb,
        "prefill_tokens_per_s": sum(r["input_tokens"] for r in rows) / prefill_s if prefill_s else None,
        "decode_tokens_per_s": decode_steps / decode_s if decode_s and decode_steps else None,
        "seconds_per_sample": mean([r["seconds"] for r in rows]),
        "samples_done": float(len(rows)),
    }
    return {k: v for k, v in out.items() if v is not None}
