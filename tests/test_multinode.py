"""Sweeps on a real multi-node Ray cluster that the launcher did not start, and a node lost mid-sweep.

A head and two worker nodes run as separate ``ray start --block`` processes, each with its own
CPUs, in a network namespace with only loopback (so every node uses 127.0.0.1), with token
authentication as the SLURM script sets it up. The launcher joins with ``--address``; the head
offers no CPUs, so every trial (every Ray Train worker) runs on a worker node, and one worker
node is killed while trials run on it: evaluations, and trainings that go on from their
checkpoint. The tests share one cluster (starting one takes minutes on a busy machine); each
starts by bringing back a worker node an earlier test killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from netns import LoopbackNamespace, missing_tools
from sweep_helpers import child_runs

from sweeps.tracking import embedded_uri
from trainers.arithmetic import write_dataset
from trainers.checkpoints import checkpoint_step, latest_checkpoint

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
            # the launcher's console lines are checked one event per line: no wrapping at 80 columns
            "COLUMNS": "250",
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
        log = open(self.logs / f"{name}.log", "a")  # noqa: SIM115 (the node's lifetime; a restart appends)
        return self.popen(RAY, "start", *args, "--disable-usage-stats", "--block", env=self.env, stdout=log,
                          stderr=subprocess.STDOUT)  # fmt: skip

    def _worker(self, index: int) -> subprocess.Popen:
        return self._node(f"worker{index}", f"--address={self.address}", "--num-cpus=1")

    def _restart_failed_workers(self) -> None:
        """A worker node whose start timed out (Ray gives a raylet 30 s to register: a busy 2-core machine)
        is started again, four times at most over the cluster's life (its tests restart killed nodes too)."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.restarts += 1
                assert self.restarts <= 4, (self.logs / f"worker{index}.log").read_text()[-3000:]
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

    def _wait_for_nodes(self, count: int, timeout: float = 600, restart: bool = True) -> None:
        """Until Ray counts ``count`` live nodes; ``restart``: start again a worker whose start failed."""
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if restart:
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
        """A node lost: its ray start, raylet and every process they started die at once (SIGKILL).

        Ray's workers run in sessions of their own, so they are found as the node's descendants.
        """
        below = descendants(node.pid)
        os.killpg(node.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait(timeout=30)

    def revive(self) -> None:
        """Start again the worker nodes a test killed, once Ray has seen them go (a full cluster again)."""
        dead = [index for index, worker in enumerate(self.workers) if worker.poll() is not None]
        if not dead:
            return
        self._wait_for_nodes(1 + len(self.workers) - len(dead), restart=False)
        for index in dead:
            self.workers[index] = self._worker(index)
        self._wait_for_nodes(1 + len(self.workers))

    def node_of(self, pid: int) -> int | None:
        """The index of the live worker node a process runs under (a worker of its raylet), or None."""
        live = {worker.pid: index for index, worker in enumerate(self.workers) if worker.poll() is None}
        parents = parent_pids()
        while pid > 1 and pid not in live:
            pid = parents.get(pid, 0)
        return live.get(pid)

    def launch(self, path: Path, output: Path) -> subprocess.Popen:
        """``sweeps launch PATH --address``; its console goes to ``output`` (a pipe could fill and stall it)."""
        log = open(output, "w")  # noqa: SIM115 (the launcher's lifetime)
        return self.popen(SWEEPS, "launch", str(path), "--address", self.address, env=self.env, stdout=log,
                          stderr=subprocess.STDOUT)  # fmt: skip


def parent_pids() -> dict[int, int]:
    """Every process's parent, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, by their children, and so on."""
    children: dict[int, list[int]] = {}
    for child, parent in parent_pids().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray_cluster = RayCluster(tmp_path_factory.mktemp("cluster"))
    yield ray_cluster
    ray_cluster.stop()


def retry_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("↻")]


def finish(launcher: subprocess.Popen, output: Path, timeout: float) -> str:
    """Wait for the launcher (killed if it overruns) and return what it printed."""
    try:
        launcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        pytest.fail(f"the sweep did not finish in {timeout:.0f}s\n{output.read_text()[-5000:]}")
    return output.read_text()


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


def tune_failures(storage: Path, sweep: str) -> dict[str, int]:
    """How many times Tune saw each trial fail: its Tune trial's error file has one entry per failure."""
    counts: dict[str, int] = {}
    for params in (storage / sweep / "_tune").glob("launch-*/*/params.json"):
        error = params.parent / "error.txt"
        failures = len(re.findall(r"^Failure # \d+", error.read_text(), re.MULTILINE)) if error.exists() else 0
        for member in json.loads(params.read_text())["trial"]["members"]:
            key = member["context"]["key"]
            counts[key] = counts.get(key, 0) + failures
    return counts


def assert_one_retry_line_per_failure(output: str, storage: Path, sweep: str, reason: str) -> dict[str, int]:
    """Each time Tune retried a trial, the launcher said so once, on one line, with why; returns the failures."""
    lines = retry_lines(output)
    failures = tune_failures(storage, sweep)
    for key, count in failures.items():
        mine = [line for line in lines if key in line]
        assert len(mine) == count, output
        for line in mine:
            assert re.search(reason, line), line
    assert len(lines) == sum(failures.values()), output
    return failures


#: the retry line of a trial whose Ray actor died with its node: Ray says so once the node is declared
#: dead; before that, the call in flight fails with the actor unreachable
NODE_LOST = r"retrying: (its node 127\.0\.0\.1 \(\w+\) died|its Ray actor stopped answering)"


def running_trials(sweep_dir: Path) -> dict[str, int]:
    """The trials that started and have no result yet: key → the pid of the Ray actor running it."""
    running = {}
    for started in sweep_dir.glob("*/started.json"):
        if not (started.parent / "result.json").exists():
            with contextlib.suppress(OSError, ValueError):  # being written
                running[started.parent.name] = json.loads(started.read_text())["pid"]
    return running


def test_a_sweep_on_a_three_node_cluster_survives_a_lost_worker_node(cluster, tiny_model, tmp_path):
    cluster.revive()
    path = evaluate_sweep(tmp_path, tiny_model)
    storage = tmp_path / "shared-storage"
    sweep_dir = storage / "multinode"
    console = tmp_path / "launcher.txt"
    launcher = cluster.launch(path, console)
    # A node dies with the trial (group) it runs: once both worker nodes run one, or else once a
    # first group finished and another runs (a node slow to start its actor may never get one).
    deadline = time.monotonic() + 600
    while True:
        assert launcher.poll() is None, console.read_text()
        assert time.monotonic() < deadline, f"no trial ran on a worker node in time\n{console.read_text()}"
        nodes = {node for pid in running_trials(sweep_dir).values() if (node := cluster.node_of(pid)) is not None}
        if len(nodes) >= 2 or (nodes and any(sweep_dir.glob("*/result.json"))):
            break
        time.sleep(0.5)
    cluster.kill_node(cluster.workers[min(nodes)])
    output = finish(launcher, console, timeout=900)
    assert launcher.returncode == 0, output
    records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    assert len(records) == 4 and all(r["status"] == "completed" for r in records), output
    retried = [r["key"] for r in records if r["attempt"] > 1]
    assert retried, "no trial was retried after its node died"
    # its actor died with its node: Ray's report becomes one line per retried trial that says so
    failures = assert_one_retry_line_per_failure(output, storage, "multinode", NODE_LOST)
    attempts = {r["key"]: r["attempt"] for r in records}
    assert all(failures[key] for key in retried), f"retried without a failure Tune saw: {failures} {attempts}\n{output}"
    runs = child_runs(storage, "multinode")
    assert sorted(r.data.tags["sweeps.trial_key"] for r in runs) == sorted(r["key"] for r in records)
    assert "joined the cluster" in output
    assert "Traceback" not in output


#: long enough that a trial is still training when its node dies, short enough for CI
SFT_STEPS = 16


def sft_sweep(folder: Path, model: Path) -> Path:
    """Two tiny LoRA trainings, each with one Ray Train worker (one CPU: one per worker node)."""
    data = write_dataset(folder / "sft.jsonl", count=60, kind="sft")
    spec = {
        "name": "multinode-sft",
        "workload": "sft",
        "storage": str(folder / "shared-storage"),
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
        "retries": 1,
        "fixed": {
            "model": str(model),
            "dataset": str(data),
            "max_steps": SFT_STEPS,
            "batch_size": 2,
            "zero_stage": 0,
            "save_steps": 2,
            "eval_steps": SFT_STEPS,
            "max_new_tokens": 4,
        },
        "grid": {"learning_rate": [1e-3, 2e-3]},
    }
    path = folder / "multinode-sft.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def train_workers(cluster: RayCluster) -> dict[int, str]:
    """The Ray Train workers running on the cluster's worker nodes: pid → the folder it works in.

    Ray Train runs each worker in its run's working directory, whose name starts with the trial
    key (``trainers.trainable`` names the run so), which tells which trial a worker trains.
    """
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        pid = int(line.split()[0])
        if "ray::RayTrainWorker" in line and cluster.node_of(pid) is not None:
            try:
                found[pid] = os.readlink(f"/proc/{pid}/cwd")
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def test_an_sft_trial_on_a_lost_node_resumes_from_its_checkpoint_elsewhere(cluster, tiny_model, tmp_path):
    cluster.revive()
    path = sft_sweep(tmp_path, tiny_model)
    storage = tmp_path / "shared-storage"
    sweep_dir = storage / "multinode-sft"
    console = tmp_path / "launcher.txt"
    launcher = cluster.launch(path, console)
    # Once a trial has a complete checkpoint, the node its Ray Train worker runs on dies.
    deadline = time.monotonic() + 900
    killed: tuple[str, int] | None = None  # (the trial's key, its latest checkpoint's step)
    while killed is None:
        assert launcher.poll() is None, console.read_text()
        assert time.monotonic() < deadline, f"no trial saved a checkpoint in time\n{console.read_text()}"
        for pid, cwd in train_workers(cluster).items():
            key = next((d.name for d in sweep_dir.iterdir() if d.is_dir() and d.name in cwd), None)
            checkpoint = latest_checkpoint(sweep_dir / key / "checkpoints") if key else None
            node = cluster.node_of(pid)
            if checkpoint is not None and node is not None:
                cluster.kill_node(cluster.workers[node])
                killed = (key, checkpoint_step(checkpoint))
                break
        time.sleep(0.2)
    key, step = killed
    assert step < SFT_STEPS and not (sweep_dir / key / "result.json").exists(), "it finished before the node died"
    cluster.revive()  # a node to retry on (the other one may still train its own trial)
    output = finish(launcher, console, timeout=900)
    assert launcher.returncode == 0, output

    records = {r["key"]: r for r in (json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json"))}
    assert len(records) == 2 and all(r["status"] == "completed" for r in records.values()), output
    assert all(r["info"]["global_step"] == SFT_STEPS for r in records.values())
    # the trial on the lost node went on from its checkpoint, not from step 0
    record = records[key]
    assert record["attempt"] == 2 and step <= record["info"]["resumed_from_step"] < SFT_STEPS, record["info"]
    # its Ray Train worker died with the node (the trial recorded why), or its own actor did too
    worker_lost = r"retrying after an error: the process of Ray Train worker rank 0 died"
    failures = assert_one_retry_line_per_failure(output, storage, "multinode-sft", f"{NODE_LOST}|{worker_lost}")
    assert failures[key] == 1
    # one MLflow run per trial: the retry reattached its trial's run, whose steps go on from the checkpoint's
    runs = {r.data.tags["sweeps.trial_key"]: r for r in child_runs(storage, "multinode-sft")}
    assert sorted(runs) == sorted(records)
    history = MlflowClient(embedded_uri(storage)).get_metric_history(runs[key].info.run_id, "step")
    resumed = record["info"]["resumed_from_step"]
    steps = {point.step for point in history}
    assert min(steps) == 1 and max(steps) == SFT_STEPS
    assert min(s for s in steps if s > resumed) == resumed + 1
    assert "Traceback" not in output
