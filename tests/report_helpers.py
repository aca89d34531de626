"""A sweep folder built from constructed result records, for the report tests: holes, failures, a stop,
a pending trial, two seeds of one configuration and an unhealthy trial."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

from sweeps.plan import trial_key
from sweeps.store import SweepStore

MODEL = "tiny-llama"
COSTS = {"kv_cache_mb": "min", "seconds_per_sample": "min", "prefill_tokens_per_s": "max", "decode_tokens_per_s": "max"}


def _params(task: str, technique: str, seed: int = 0, **technique_params) -> dict:
    return {"model": MODEL, "task": task, "technique": technique, "seed": seed, "samples": 4, **technique_params}


def _metrics(score: float, kv: float, seconds: float) -> dict:
    return {
        "score": score,
        "empty_rate": 0.0,
        "kv_cache_mb": kv,
        "seconds_per_sample": seconds,
        "prefill_tokens_per_s": 1000.0 / seconds,
        "decode_tokens_per_s": 50.0 / seconds,
    }


#: (params, status, metrics, tags): holes (no streamingllm for niah), a failure, a stop, a pending
#: trial, two seeds of one configuration and an unhealthy trial with the best score of all
TRIALS = [
    (_params("passkey", "baseline"), "completed", _metrics(0.90, 40.0, 3.0), {}),
    (
        _params("passkey", "snapkv", window_size=8, cache_size=64, pooling="maxpool"),
        "completed",
        _metrics(0.70, 5.0, 2.0),
        {},
    ),
    (
        _params("passkey", "snapkv", 1, window_size=8, cache_size=64, pooling="maxpool"),
        "completed",
        _metrics(0.50, 5.2, 2.2),
        {},
    ),
    (
        _params("passkey", "snapkv", window_size=16, cache_size=64, pooling="maxpool"),
        "completed",
        _metrics(0.60, 5.3, 1.8),
        {},
    ),
    (
        _params("passkey", "snapkv", window_size=8, cache_size=128, pooling="maxpool"),
        "completed",
        _metrics(0.85, 10.0, 2.5),
        {},
    ),
    (_params("passkey", "snapkv", window_size=16, cache_size=128, pooling="maxpool"), "failed", {}, {}),
    (
        _params("passkey", "snapkv", window_size=8, cache_size=64, pooling="avgpool"),
        "completed",
        _metrics(0.95, 4.0, 1.0),
        {"health.empty_outputs": "80% of answers are empty"},
    ),
    (_params("passkey", "streamingllm", cache_size=64), "completed", _metrics(0.30, 5.0, 1.5), {}),
    (_params("passkey", "streamingllm", cache_size=128), "stopped", _metrics(0.40, 10.0, 1.6), {}),
    (_params("niah", "baseline"), "completed", _metrics(1.00, 40.0, 3.1), {}),
    (
        _params("niah", "snapkv", window_size=8, cache_size=64, pooling="maxpool"),
        "completed",
        _metrics(0.75, 5.0, 2.1),
        {},
    ),
    (_params("niah", "snapkv", window_size=8, cache_size=128, pooling="maxpool"), None, {}, {}),
]


def write_study(root: Path, name: str = "study", workload: str = "evaluate", trials=TRIALS) -> SweepStore:
    """A sweep folder as a launch leaves it: sweep.yaml, plan.json and one result.json per finished trial."""
    store = SweepStore(root / name)
    store.save_spec({"name": name, "workload": workload, "storage": str(root), "fixed": {}, "grid": {}})
    plan = []
    for params, status, metrics, tags in trials:
        key = trial_key(workload, params)
        plan.append({"key": key, "name": " ".join(f"{v}" for v in params.values()), "params": params})
        if status is None:
            continue
        record = {"key": key, "status": status, "params": params, "metrics": metrics, "tags": tags}
        record.update(started_at=1.0, finished_at=2.0, duration_s=1.0, missing={}, error=None)
        if status == "failed":
            record["error"] = {"type": "RuntimeError", "message": "boom"}
        if status == "stopped":
            record["stopped_by"] = "asha"
        store.write_result(key, record)
    store.save_plan(plan)
    return store


class ScriptTags(HTMLParser):
    """Counts a page's script elements and collects the ``src`` of those that load a file."""

    def __init__(self):
        super().__init__()
        self.count, self.sources = 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.count += 1
            self.sources += [v for k, v in attrs if k == "src"]


def key_of(params: dict, workload: str = "evaluate") -> str:
    return trial_key(workload, params)


def front_keys(points: list[tuple[str, float, float]], cost_lower: bool) -> set[str]:
    """The front by a sweep over the cost from best to worst: a point is on it if it beats every
    score seen at a better or equal cost (independent of the report's pairwise check)."""
    ordered = sorted(points, key=lambda p: (p[1] if cost_lower else -p[1], -p[2]))
    best, out = -math.inf, set()
    for key, _, score in ordered:
        if score > best:
            out.add(key)
            best = score
    return out
