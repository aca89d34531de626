"""platform/slurm/ray-sweep.sbatch on a real SLURM cluster (two virtual nodes, Debian's packages).

Each job turns its allocation into a two-node Ray cluster, launches the sweep on it with
``--address``, and stops only the Ray it started; a job that is requeued (by ``scontrol
requeue``, or by itself on the time-limit signal) resumes the sweep without redoing or
duplicating a trial.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import write_sweep
from slurm_cluster import SlurmCluster, missing_tools
from sweep_helpers import child_runs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_tools()), reason=f"SLURM test cluster needs: {', '.join(missing_tools())}"),
]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm") / "cluster")
    yield cluster
    cluster.stop()


def job_sweep(folder: Path, name: str, **fields) -> Path:
    """The sweep file ``name`` in ``folder``, stored under ``folder/runs``: one CPU a trial, two at a time."""
    spec = {"name": name, "storage": str(folder / "runs"), "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 2}
    return write_sweep(folder / f"{name}.yaml", **{**spec, **fields})


def sweep_file(folder: Path, model: Path, name: str, trials: int, samples: int) -> Path:
    """A small evaluate sweep of ``trials`` cache sizes, stored in ``folder``."""
    return job_sweep(
        folder,
        name,
        workload="evaluate",
        # trial groups of two: results land group by group, so a requeue finds some done and some not
        share_prefill={"max_group": 2},
        fixed={"model": str(model), "task": "passkey", "context_length": 256, "samples": samples},
        grid={"method": [{"technique": "streamingllm", "cache_size": [32 + 16 * i for i in range(trials)]}]},
    )


def sleeping_sweep_file(folder: Path, name: str, trials: int, seconds: float) -> Path:
    """``trials`` noop trials of ``seconds`` each, two at a time: a sweep whose pace the test knows.

    An evaluate sweep on the tiny model finishes a trial in under a second once its model is
    loaded, so a signal sent after its first result can arrive when the sweep has already ended
    (CI saw that). Here every round of two trials takes ``seconds``, so a requeue sent within a
    few seconds of a result always lands mid-sweep.
    """
    return job_sweep(folder, name, workload="noop", fixed={"seconds": seconds}, grid={"x": list(range(trials))})


def results(storage: Path, name: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (storage / name).glob("*/result.json")}


def job_log(folder: Path, job_id: str) -> str:
    return (folder / f"ray-sweep-{job_id}.out").read_text()


def test_a_job_runs_its_sweep_on_a_two_node_ray_and_stops_only_its_own_ray(slurm, tiny_model, tmp_path):
    # Another Ray on the same node, as another job of the same user would have: it must survive.
    # (A short temp folder: Ray's socket paths must stay under the kernel's 107 characters.)
    other_tmp = Path(tempfile.mkdtemp(prefix="ray-other-"))
    other_log = tmp_path / "other-ray.log"
    other = slurm.popen(
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", "--port=29999",
        f"--temp-dir={other_tmp}", "--num-cpus=1", "--disable-usage-stats", "--block",
        stdout=other_log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    probe = "import socket; socket.create_connection(('127.0.0.1', 29999), timeout=2).close()"
    _wait_for(lambda: slurm.run(sys.executable, "-c", probe, check=False).returncode == 0, 300, "the other Ray")
    try:
        path = sweep_file(tmp_path, tiny_model, "slurm-small", trials=3, samples=1)
        job = slurm.submit(cwd=tmp_path, SWEEP_FILE=str(path))
        info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=900)
        log = job_log(tmp_path, job)
        assert info["JobState"] == "COMPLETED", log[-4000:]
        assert "2 node(s)" in log and "launcher exited with status 0" in log
        done = results(tmp_path / "runs", "slurm-small")
        assert len(done) == 3 and all(r["status"] == "completed" for r in done.values())
        assert len(child_runs(tmp_path / "runs", "slurm-small")) == 3
        # The job's own Ray is gone; the other Ray on the node is not.
        job_ray = [pid for pid in slurm.pids() if f"ray-job-{job}" in _cmdline(pid)]
        assert job_ray == []
        assert other.poll() is None, "the job's clean-up ended another Ray on its node\n" + other_log.read_text()
    finally:
        os.killpg(other.pid, signal.SIGTERM)
        other.wait(timeout=60)
        shutil.rmtree(other_tmp, ignore_errors=True)


def test_a_requeued_job_resumes_the_sweep_without_duplicates(slurm, tmp_path):
    name = "slurm-requeue"
    # 10 trials of 8 s, two at a time: five rounds of 8 s per attempt of the job, so each requeue
    # below (sent within seconds of a result) lands while trials are still to run
    path = sleeping_sweep_file(tmp_path, name, trials=10, seconds=8)
    storage = tmp_path / "runs"
    job = slurm.submit(cwd=tmp_path, SWEEP_FILE=str(path))

    def log() -> str:
        return job_log(tmp_path, job) if (tmp_path / f"ray-sweep-{job}.out").exists() else ""

    # 1. The time-limit signal (what --signal=B:USR1@600 sends): the script stops the launcher
    #    cleanly and requeues its own job.
    _wait_for(lambda: len(results(storage, name)) >= 1, timeout=900, what="a first finished trial", log=log)
    first = results(storage, name)
    slurm.run("scancel", "--signal=USR1", "--batch", job)
    _wait_for(lambda: int(slurm.job(job).get("Restarts", 0)) >= 1, timeout=300, what="the job's own requeue", log=log)
    assert len(results(storage, name)) < 10, "the sweep ended before its requeue: nothing to resume\n" + log()[-4000:]

    # 2. An administrator's requeue while it runs again.
    slurm.wait_state(job, ("RUNNING",), timeout=300)
    _wait_for(lambda: len(results(storage, name)) > len(first), timeout=900, what="progress after the requeue", log=log)
    slurm.run("scontrol", "requeue", job)
    _wait_for(lambda: int(slurm.job(job).get("Restarts", 0)) >= 2, timeout=300, what="the second requeue", log=log)

    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=900)
    text = job_log(tmp_path, job)
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert "requeueing job" in text and "(restart 1)" in text and "(restart 2)" in text
    done = results(storage, name)
    assert len(done) == 10 and all(r["status"] == "completed" for r in done.values())
    for key, record in first.items():  # finished before the requeues: never run again
        assert done[key]["finished_at"] == record["finished_at"]
    runs = child_runs(storage, name)
    assert sorted(r.data.tags["sweeps.trial_key"] for r in runs) == sorted(done)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _wait_for(condition, timeout: float, what: str, log=lambda: "") -> None:
    """Poll until ``condition``; on timeout say what was awaited, with the tail of ``log()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f}s\n{log()[-4000:]}")
        time.sleep(2)
