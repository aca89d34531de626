"""Integration on SmolLM2-135M-Instruct: a real instruct model that finds a pass key on CPU."""

from __future__ import annotations

import pandas as pd
import pytest
from sweep_helpers import run_file

import sweeps
from evaluators.models import SMOLLM2_GGUF, cache_dir, resolve
from sweeps.store import SweepStore

pytestmark = pytest.mark.slow


def test_smollm2_finds_the_pass_key_and_eviction_loses_it(ray_session, sweep_file, smollm2):
    path = sweep_file(
        name="smol",
        experiment="smol",
        max_concurrent=1,
        resources={"cpu": 2},
        fixed={
            "model": "smollm2-135m-instruct",
            "task": "passkey",
            "context_length": 512,
            "samples": 2,
            "needle_depth": [0.3, 0.5],
        },
        grid={
            "method": [
                {"technique": "baseline"},
                {"technique": "streamingllm", "cache_size": 64},  # sinks + the question: the needle is gone
                {"technique": "snapkv", "window_size": 32, "cache_size": 128},
            ]
        },
    )
    plan, summary, _ = run_file(path)
    assert summary.counts["done"] == 3, summary.counts
    store = SweepStore(plan.spec.sweep_dir)
    score = {t.config["technique"]: store.result(t.key)["metrics"]["score"] for t in plan.trials}
    assert score["baseline"] == 1.0
    assert score["streamingllm"] == 0.0
    results = {t.config["technique"]: store.result(t.key) for t in plan.trials}
    for technique, record in results.items():
        assert record["metrics"]["empty_rate"] == 0.0, technique
        assert record["info"]["chat_template_applied"] is True
    assert results["snapkv"]["metrics"]["kv_cache_tokens"] == 128
    assert results["baseline"]["metrics"]["kv_cache_tokens"] == results["baseline"]["metrics"]["prompt_tokens"]

    # the study of this real sweep, read back through the notebook API: its tables hold the results
    study = sweeps.load("smol", storage=plan.spec.storage_path)
    assert study.statuses == {t.key: "done" for t in plan.trials}
    files = study.report()
    trials = pd.read_csv(files.tables["trials"], dtype={"key": str}).set_index("key")
    for trial in plan.trials:
        metrics = store.result(trial.key)["metrics"]
        for metric in ("score", "kv_cache_mb", "seconds_per_sample"):
            assert trials.loc[trial.key, metric] == pytest.approx(metrics[metric]), (trial.key, metric)
    # the memory front: every healthy trial (an unhealthy one is left off), the cheapest on it
    healthy = set(trials.index[trials["health"].isna()])
    assert {t.key for t in plan.trials if t.config["technique"] == "baseline"} <= healthy
    fronts = pd.read_csv(files.tables["fronts"], dtype={"keys": str})
    memory = fronts[fronts["cost"] == "kv_cache_mb"].set_index("keys")
    assert set(memory.index) == healthy
    cheapest = min(healthy, key=lambda key: store.result(key)["metrics"]["kv_cache_mb"])
    assert memory.loc[cheapest, "on_front"]  # nothing keeps less memory


def test_a_gguf_file_and_the_alias_share_one_conversion(smollm2):
    gguf = cache_dir() / "gguf" / SMOLLM2_GGUF.rsplit("/", 1)[-1]
    assert gguf.is_file()
    converted = resolve(str(gguf)).path
    assert converted == str(smollm2)
    files = {p.name for p in smollm2.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
