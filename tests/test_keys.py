"""Trial keys: short, stable across processes and versions, blind to order, defaults and secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from sweeps.plan import make_plan, trial_key
from sweeps.spec import parse


def plan_keys(tmp_path, fixed, grid=None):
    spec = parse({"name": "k", "workload": "evaluate", "storage": str(tmp_path), "fixed": fixed, "grid": grid or {}})
    return [t.key for t in make_plan(spec).trials]


def test_key_ignores_order_defaults_and_secrets(tmp_path):
    a = plan_keys(tmp_path, {"model": "org/m", "task": "passkey", "technique": "snapkv", "cache_size": 256})
    b = plan_keys(
        tmp_path,
        {
            "cache_size": 256,
            "technique": "snapkv",
            "task": "passkey",
            "model": "org/m",
            "pooling": "avgpool",
            "window_size": 32,
            "hf_token": "hf_secret",
        },
    )
    assert a == b and len(a[0]) == 10


def test_key_changes_with_any_effective_value(tmp_path):
    fixed = {"model": "org/m", "task": "passkey", "technique": "snapkv"}
    keys = plan_keys(tmp_path, fixed, {"cache_size": [256, 512], "pooling": ["avgpool", "maxpool"]})
    assert len(set(keys)) == 4
    assert trial_key("evaluate", {"a": 1}) != trial_key("sft", {"a": 1})


def test_key_is_the_same_in_another_process():
    params = {"model": "org/m", "task": "passkey", "cache_size": 256, "needle_depth": [0.1, 0.9]}
    code = "import json, sys; from sweeps.plan import trial_key; print(trial_key('evaluate', json.loads(sys.argv[1])))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(params)], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert out == trial_key("evaluate", params)


def test_key_is_the_documented_hash_of_the_canonical_json():
    # Trial keys name folders in storage and tag MLflow runs: changing how they are computed
    # would orphan every stored result, so the format is pinned here: the first 10 hex digits
    # of SHA-256 over compact, key-sorted JSON of {"params": ..., "workload": ...}.
    canonical = b'{"params":{"model":"m","task":"passkey"},"workload":"evaluate"}'
    assert trial_key("evaluate", {"task": "passkey", "model": "m"}) == hashlib.sha256(canonical).hexdigest()[:10]
