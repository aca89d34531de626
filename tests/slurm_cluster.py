"""A real SLURM cluster of two virtual nodes for the tests, in a network namespace of its own.

The daemons come from Debian's packages and are started by ``platform/slurm/local-cluster.sh``
(the same script the README tells people to try the sbatch script with). Everything runs in
a namespace that has only loopback, so every Ray node, the GCS and the launcher of the jobs
use 127.0.0.1. Tear-down ends exactly the processes in that namespace, by PID.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from netns import LoopbackNamespace
from netns import missing_tools as namespace_lacks

REPO = Path(__file__).resolve().parent.parent
LOCAL_CLUSTER = REPO / "platform" / "slurm" / "local-cluster.sh"
SBATCH = REPO / "platform" / "slurm" / "ray-sweep.sbatch"


def missing_tools() -> list[str]:
    """What this machine lacks to run the cluster (the tests skip naming it; CI installs it)."""
    return namespace_lacks("slurmctld", "slurmd", "munged", "sbatch")


class SlurmCluster(LoopbackNamespace):
    """Two virtual SLURM nodes and the namespace they live in."""

    def __init__(self, folder: Path, cpus_per_node: int = 2):
        super().__init__()
        self.folder = folder
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
        self.env.pop("RAY_ADDRESS", None)
        try:
            self.run("bash", str(LOCAL_CLUSTER), "start", str(folder), str(cpus_per_node), timeout=120)
        except BaseException:
            self.stop()
            raise

    def run(self, *command: str, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """A command in the namespace, with the cluster's SLURM_CONF."""
        return super().run(*command, timeout=timeout, check=check, env=getattr(self, "env", None), **kwargs)

    def submit(self, *sbatch_args: str, cwd: Path, **env: str) -> str:
        """Submit ray-sweep.sbatch sized for this machine; returns the job id."""
        out = subprocess.run(
            self.command(
                "sbatch", "--parsable", "--gpus-per-node=0", "--cpus-per-task=2", "--time=60", *sbatch_args, str(SBATCH)
            ),
            env={**self.env, "VENV": str(REPO / ".venv"), "RAY_HEAD_IP": "127.0.0.1", **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a mapping (JobState, Restarts, ...)."""
        text = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(part.split("=", 1) for part in text.split() if "=" in part)

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is {info.get('JobState')} after {timeout:.0f}s, not in {states}")
            time.sleep(2)

    def stop(self) -> None:
        """Stop the daemons, then anything still alive in the namespace, then the namespace."""
        subprocess.run(["bash", str(LOCAL_CLUSTER), "stop", str(self.folder)], env=self.env, timeout=60, check=False)
        super().stop()
