"""Resume after the launching process is killed with SIGKILL in the middle of a sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

from mlflow import MlflowClient
from sweep_helpers import sweeps_cli

from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri

TRIALS = 6


def test_resume_after_kill_9_runs_only_what_did_not_finish(sweep_file, tiny_model, tmp_path):
    """Trial groups of two: the launcher is killed once a group has finished, while the next one runs."""
    storage = tmp_path / "runs"
    path = sweep_file(
        name="killed",
        experiment="killed",
        max_concurrent=1,
        share_prefill={"max_group": 2},
        storage=str(storage),
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 1500, "samples": 40},
        grid={"method": [{"technique": "snapkv", "window_size": 8, "cache_size": [32, 48, 64, 96, 128, 160]}]},
    )
    store = SweepStore(storage / "killed")
    launcher = sweeps_cli("launch", str(path))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(store.result_keys()) < 2:
        assert launcher.poll() is None, launcher.stdout.read()
        time.sleep(0.1)
    os.kill(launcher.pid, signal.SIGKILL)  # the launcher only, as `kill -9 <pid>` would
    launcher.wait()
    finished_before = {k: store.result(k)["finished_at"] for k in store.result_keys()}
    assert 2 <= len(finished_before) < TRIALS, "the sweep finished before it could be interrupted"

    status = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "status", "killed", "--storage", str(storage)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert f"{len(finished_before)} done" in status.stdout and "pending" in status.stdout

    resumed = sweeps_cli("resume", "killed", "--storage", str(storage))
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert f"skipped {len(finished_before)} already completed" in output

    plan = store.plan()
    assert len(plan) == TRIALS and all(store.is_done(row["key"]) for row in plan)
    for key, finished_at in finished_before.items():  # nothing that finished was redone or lost
        assert store.result(key)["finished_at"] == finished_at

    client = MlflowClient(embedded_uri(storage))
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    roles = Counter(r.data.tags.get("sweeps.role", "child") for r in runs)
    assert roles == {"parent": 1, "child": TRIALS}
    keys = Counter(r.data.tags["sweeps.trial_key"] for r in runs if "sweeps.trial_key" in r.data.tags)
    assert set(keys) == {row["key"] for row in plan} and set(keys.values()) == {1}
    assert {r.info.status for r in runs} == {"FINISHED"}, [
        (r.info.run_name, r.info.status, r.data.tags) for r in runs if r.info.status != "FINISHED"
    ]
