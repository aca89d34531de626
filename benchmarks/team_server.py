"""A PostgreSQL-backed ``mlflow server`` for benchmarks: ``platform/mlflow/local-server.sh`` in a fresh folder.

It runs as a team's server does (basic auth, proxied artifacts, one worker unless
``MLFLOW_WORKERS`` says otherwise); this process signs in as its admin. The CPU time the server
spends (MLflow and PostgreSQL together) is read from its processes, so a benchmark can say what
each mirrored result costs the server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "platform" / "mlflow" / "local-server.sh"


def missing() -> str | None:
    """Why no such server can run here, or None."""
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not os.environ.get("PG_BIN"):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install 'llm-sweeps[team]')"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TeamServer:
    """Started on entering, stopped (every process it began, and its folder) on leaving."""

    def __init__(self) -> None:
        # PostgreSQL runs as its own user, which must reach the folder: not a private temp folder
        self.folder = Path(tempfile.mkdtemp(prefix="scale-pg-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = ("admin", secrets.token_hex(12))

    def __enter__(self) -> TeamServer:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.auth[1],
            # no GenAI job runner beside the server: tracking does not use it, and it only adds load
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        try:
            subprocess.run(
                ["bash", str(SCRIPT), "start", str(self.folder), str(self.port)],
                env=env,
                check=True,
                capture_output=True,
                timeout=900,
            )
        except BaseException:
            self.__exit__()
            raise
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = self.auth
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.folder)], check=False, capture_output=True, timeout=300)
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_experiment(self, name: str) -> None:
        """Create ``name``, waiting as long as the server's first requests take (minutes on a busy machine)."""
        import requests

        answer = requests.post(
            f"{self.url}/api/2.0/mlflow/experiments/create", json={"name": name}, auth=self.auth, timeout=600
        )
        if answer.status_code != 200 and "RESOURCE_ALREADY_EXISTS" not in answer.text:
            answer.raise_for_status()

    def cpu_seconds(self) -> float:
        """CPU time used so far by the MLflow server and PostgreSQL (every process of both)."""
        roots = [self.folder / "mlflow.pid", self.folder / "pg" / "postmaster.pid"]
        total = 0.0
        for pid_file in roots:
            try:
                root = psutil.Process(int(pid_file.read_text().split()[0]))
                processes = [root, *root.children(recursive=True)]
            except (OSError, ValueError, psutil.Error):
                continue
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.Error:  # ended meanwhile (a PostgreSQL backend of a closed connection)
                    continue
                # plus what its ended children used (PostgreSQL's backends of closed connections)
                total += times.user + times.system + times.children_user + times.children_system
        return total
