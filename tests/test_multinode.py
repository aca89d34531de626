"""A sweep on a real multi-node Ray cluster that the launcher did not start, and a node lost mid-sweep.

A head and two worker nodes run as separate ``ray start --block`` processes, each with its own
CPUs, in a network namespace with only loopback (so every node uses 127.0.0.1), with token
authentication as the SLURM script sets it up. The launcher joins with ``--address``; the head
offers no CPUs, so every trial runs on a worker node, and one worker node is killed while
trials run on it.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from netns import LoopbackNamespace, missing_tools
from sweep_helpers import child_runs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs: {', '.join(missing_tools())}"),
]

RAY = str(Path(sys.executable).parent / "ray")
SWEEPS = str(Path(sys.executable).parent / "sweeps")


class RayCluster(LoopbackNamespace):
    """A head without CPUs and worker nodes with one CPU each, all on 127.0.0.1."""

    def __init__(self, folder: Path, workers: int = 2):
        super().__init__()
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.env.pop("RAY_ADDRESS", None)
        # Ray refuses a head port that any gcs_server on the machine uses, whatever its namespace.
        port = random.randint(20000, 29999)
        self.address = f"127.0.0.1:{port}"
        self.logs = folder
        self.restarts = 0
        try:
            self.head = self._node("head", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=0")
            self._wait_for_port(port)
            self.workers = [self._worker(i) for i in range(workers)]
            self._wait_for_nodes(1 + workers)
        except BaseException:
            self.stop()
            raise

    def _node(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 (the node's lifetime)
        return self.popen(RAY, "start", *args, "--disable-usage-stats", "--block", env=self.env, stdout=log,
                          stderr=subprocess.STDOUT)  # fmt: skip

    def _worker(self, index: int) -> subprocess.Popen:
        return self._node(f"worker{index}", f"--address={self.address}", "--num-cpus=1")

    def _restart_failed_workers(self) -> None:
        """A worker node whose start timed out (a busy 2-core machine) is started again, twice at most."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.restarts += 1
                assert self.restarts <= 2, (self.logs / f"worker{index}.log").read_text()[-3000:]
                self.workers[index] = self._worker(index)

    def _wait_for_port(self, port: int, timeout: float = 300) -> None:
        """Until the head's GCS port answers (ray.init alone would retry for minutes)."""
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).close()"
        deadline = time.monotonic() + timeout
        while self.run(sys.executable, "-c", probe, check=False).returncode != 0:
            assert self.head.poll() is None, (self.logs / "head.log").read_text()[-3000:]
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray head did not answer within {timeout:.0f}s")
            time.sleep(1)

    def _wait_for_nodes(self, count: int, timeout: float = 600) -> None:
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._restart_failed_workers()
            try:
                answer = self.run(sys.executable, "-c", probe, self.address, check=False, env=self.env, timeout=180)
            except subprocess.TimeoutExpired:
                continue
            if answer.returncode == 0 and answer.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(3)
        raise TimeoutError(f"{count} Ray nodes did not join within {timeout:.0f}s")

    def kill_node(self, node: subprocess.Popen) -> None:
        """A node lost: its ray start, raylet and workers die at once (SIGKILL to its session)."""
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)

    def launch(self, path: Path) -> subprocess.Popen:
        return self.popen(SWEEPS, "launch", str(path), "--address", self.address, env=self.env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.fixture
def cluster(tmp_path):
    ray_cluster = RayCluster(tmp_path)
    yield ray_cluster
    ray_cluster.stop()


def evaluate_sweep(folder: Path, model: Path) -> Path:
    spec = {
        "name": "multinode",
        "workload": "evaluate",
        "storage": str(folder / "shared-storage"),  # the folder every node sees
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
        "retries": 2,
        "fixed": {"model": str(model), "task": "passkey", "context_length": 1024, "samples": 48},
        "grid": {"method": [{"technique": "streamingllm", "cache_size": [32, 48, 64, 80]}]},
    }
    path = folder / "multinode.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_sweep_on_a_three_node_cluster_survives_a_lost_worker_node(cluster, tiny_model, tmp_path):
    path = evaluate_sweep(tmp_path, tiny_model)
    storage = tmp_path / "shared-storage"
    launcher = cluster.launch(path)
    # Once trials run on both workers, the first worker node dies with its trial.
    deadline = time.monotonic() + 600
    while len(list((storage / "multinode").glob("*/started.json"))) < 2:
        assert launcher.poll() is None, launcher.stdout.read()
        assert time.monotonic() < deadline, "no two trials started"
        time.sleep(0.5)
    cluster.kill_node(cluster.workers[0])
    output, _ = launcher.communicate(timeout=900)
    assert launcher.returncode == 0, output
    records = [json.loads(p.read_text()) for p in (storage / "multinode").glob("*/result.json")]
    assert len(records) == 4 and all(r["status"] == "completed" for r in records), output
    assert any(r["attempt"] > 1 for r in records), "no trial was retried after its node died"
    runs = child_runs(storage, "multinode")
    assert sorted(r.data.tags["sweeps.trial_key"] for r in runs) == sorted(r["key"] for r in records)
    assert "joined the cluster" in output
    assert "Traceback" not in output
