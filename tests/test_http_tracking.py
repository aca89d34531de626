"""Tracking to a real `mlflow server` process over HTTP (the server `sweeps ui` starts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow import MlflowClient
from mlflow_server import MlflowServer, free_port, wait_until_healthy
from sweep_helpers import run_file

from sweeps.store import SweepStore


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server --workers 1` on an embedded store of its own, as `sweeps ui` runs it."""
    server = MlflowServer(tmp_path / "server-store")
    server.start(wait=False)
    server.wait_until_healthy(120)
    yield server.url
    server.stop()


def test_trials_are_tracked_on_an_http_server(ray_session, sweep_file, tiny_model, mlflow_server):
    path = sweep_file(
        name="remote",
        experiment="remote-exp",
        tracking=mlflow_server,
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
        grid={"method": [{"technique": "baseline"}, {"technique": "streamingllm", "cache_size": 32}]},
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 2
    assert summary.runs_url.startswith(mlflow_server + "/#/experiments/")
    assert not (plan.spec.storage_path / "mlflow.db").exists()  # nothing went to the embedded store

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("remote-exp")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    kids = {r.data.tags["sweeps.trial_key"]: r for r in runs if r is not parent}
    store = SweepStore(plan.spec.sweep_dir)
    assert set(kids) == {t.key for t in plan.trials}
    for trial in plan.trials:
        run = kids[trial.key]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        assert run.data.metrics["kv_cache_mb"] == pytest.approx(store.result(trial.key)["metrics"]["kv_cache_mb"])
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
            "result.json",
            "generations.jsonl",
        }
    with urllib.request.urlopen(f"{mlflow_server}/", timeout=10) as reply:  # the UI itself is served
        assert reply.status == 200 and b"<html" in reply.read(2000).lower()


def test_sweeps_ui_serves_the_sweeps_embedded_store(ray_session, sweep_file, tiny_model):
    path = sweep_file(
        name="local-ui",
        experiment="local-ui",
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
        grid={"method": [{"technique": "baseline"}, {"technique": "snapkv", "window_size": 8, "cache_size": 32}]},
    )
    plan, summary, _ = run_file(path)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps.cli",
            "ui",
            "local-ui",
            "--storage",
            str(plan.spec.storage_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        announced = proc.stdout.readline()
        while "(Ctrl-C stops)" not in announced and announced:  # the sweep's run comes first
            announced = proc.stdout.readline()
        assert f"{url}/#/experiments/" in announced and announced.strip().endswith("  (Ctrl-C stops)")
        assert "/runs?workflowType=machine_learning&viewStateShareKey=sweep-local-ui" in announced
        wait_until_healthy(url, proc, 300)  # a busy 2-core machine: minutes
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("local-ui")
        assert f"/#/experiments/{experiment.experiment_id}/runs" in announced
        names = {r.info.run_name for r in client.search_runs([experiment.experiment_id])}
        assert names == {"local-ui", *(plan.run_name(t) for t in plan.trials)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the MLflow server went down with the command: nothing is left holding the port
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and port_open(port):
        time.sleep(0.2)
    assert not port_open(port), "the MLflow server outlived `sweeps ui`"
