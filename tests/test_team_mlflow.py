"""The team tracking server for real: platform/mlflow/local-server.sh (MLflow on PostgreSQL, proxied
artifacts, the basic-auth app), sweeps launched against it with credentials from the environment."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from mlflow import MlflowClient
from sweep_helpers import run_file, sweeps_cli

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "platform" / "mlflow" / "local-server.sh"
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_BIN, reason="needs PostgreSQL from Debian's packages (apt-get install postgresql)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TeamServer:
    """One MLflow server with basic auth on PostgreSQL, and an account for the tests."""

    def __init__(self) -> None:
        # PostgreSQL runs as the `postgres` user, which cannot enter pytest's private folders.
        self.folder = Path(tempfile.mkdtemp(prefix="sweeps-team-mlflow-"))
        self.folder.chmod(0o755)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = ("admin", secrets.token_hex(12))
        self.user = ("alice", secrets.token_hex(12))
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin[1],
        }
        try:
            subprocess.run(["bash", str(SERVER), "start", str(self.folder), str(self.port)], env=env, check=True,
                           timeout=300, capture_output=True)  # fmt: skip
            answer = requests.post(
                f"{self.url}/api/2.0/mlflow/users/create",
                json={"username": self.user[0], "password": self.user[1]},
                auth=self.admin,
                timeout=60,
            )
            answer.raise_for_status()
        except BaseException:
            self.stop()
            raise

    def credentials(self, user: tuple[str, str]) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}

    def client(self, monkeypatch) -> MlflowClient:
        for name, value in self.credentials(self.user).items():
            monkeypatch.setenv(name, value)
        return MlflowClient(self.url)

    def stop(self) -> None:
        subprocess.run(["bash", str(SERVER), "stop", str(self.folder)], check=False, timeout=120)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def team_server():
    server = TeamServer()
    yield server
    server.stop()


def sweep_file(folder: Path, model: Path, url: str, name: str, experiment: str = "team-study") -> Path:
    spec = {
        "name": name,
        "workload": "evaluate",
        "experiment": experiment,
        "storage": str(folder / "runs"),
        "tracking": url,
        "resources": {"cpu": 1, "gpu": 0},
        "fixed": {"model": str(model), "task": "passkey", "context_length": 128, "samples": 1},
        "grid": {"method": [{"technique": "baseline"}, {"technique": "streamingllm", "cache_size": [32, 64]}]},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _children(client: MlflowClient, experiment: str, sweep: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`sweeps.sweep` = '{sweep}'", max_results=1000)
    return [r for r in runs if r.data.tags.get("sweeps.role") != "parent"]


def _every_file_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_a_sweep_tracks_to_the_team_server_with_credentials_from_the_environment(
    team_server, tiny_model, tmp_path, ray_session, monkeypatch
):
    client = team_server.client(monkeypatch)  # the launcher's environment holds alice's credentials
    path = sweep_file(tmp_path, tiny_model, team_server.url, "team-one")
    plan, summary, output = run_file(path)
    assert summary.counts["done"] == 3
    runs = _children(client, "team-study", "team-one")
    assert sorted(r.data.tags["sweeps.trial_key"] for r in runs) == sorted(t.key for t in plan.trials)
    for run in runs:
        assert run.data.params["task"] == "passkey" and "score" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "result.json" in artifacts  # uploaded through the server (--serve-artifacts)
    assert any(Path(team_server.folder, "artifacts").rglob("result.json"))
    password = team_server.user[1]
    assert password not in output
    assert password not in _every_file_text(tmp_path / "runs")
    for run in runs:
        assert password not in str(run.data.params) + str(run.data.tags)


def test_wrong_credentials_fail_before_launch(team_server, tiny_model, tmp_path, monkeypatch):
    path = sweep_file(tmp_path, tiny_model, team_server.url, "team-denied")
    wrong = team_server.credentials(("alice", "not-" + team_server.user[1]))
    for name, value in wrong.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    proc = sweeps_cli("launch", str(path))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert time.monotonic() - started < 60
    assert "tracking" in out and "Traceback" not in out
    assert wrong["MLFLOW_TRACKING_PASSWORD"] not in out
    assert not (tmp_path / "runs" / "team-denied").exists()


def test_two_sweeps_launched_at_once_do_not_clash(team_server, tiny_model, tmp_path, monkeypatch):
    client = team_server.client(monkeypatch)  # the launchers inherit alice's credentials
    files = []
    for name in ("team-a", "team-b"):
        (tmp_path / name).mkdir()
        files.append(sweep_file(tmp_path / name, tiny_model, team_server.url, name))
    procs = [sweeps_cli("launch", str(f)) for f in files]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for name in ("team-a", "team-b"):
        runs = _children(client, "team-study", name)
        assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    exp = client.get_experiment_by_name("team-study")
    parents = client.search_runs([exp.experiment_id], "tags.`sweeps.role` = 'parent'", max_results=100)
    assert sorted(r.data.tags["sweeps.sweep"] for r in parents if r.data.tags["sweeps.sweep"] != "team-one") == [
        "team-a",
        "team-b",
    ]
