"""Helpers the launch, resume and trainer tests share: run a sweep file in-process or as the CLI, read MLflow."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient
from rich.console import Console

import sweeps
from sweeps.runner import launch
from sweeps.tracking import embedded_uri


def run_file(path: Path, *overrides: str):
    """Launch a sweep file in this process (on the session's Ray); returns the plan, summary and output."""
    plan, raw = sweeps.plan_file(path, list(overrides))
    out = io.StringIO()
    summary = launch(plan, raw, console=Console(file=out, width=200))
    return plan, summary, out.getvalue()


def child_runs(storage: Path, experiment: str) -> list:
    """The experiment's trial runs in the embedded MLflow store under ``storage`` (the parent left out)."""
    client = MlflowClient(embedded_uri(storage))
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("sweeps.role") != "parent"]


def sweeps_cli(*args: str, **kwargs) -> subprocess.Popen:
    """``sweeps ARGS`` as its own process group (so a test can kill -9 it), starting its own local Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def finished_label(record: dict) -> str:
    """What MLflow's ``sweeps.status`` must say of a finished trial: ``unhealthy`` when a health
    check tagged its outputs (tiny random models often produce empty or unformatted answers)."""
    tags = record.get("tags") or {}
    return "unhealthy" if any(k.startswith("health.") for k in tags) else "done"
