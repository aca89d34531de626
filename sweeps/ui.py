"""Serving the MLflow UI on a sweep's embedded store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sweeps.tracking import embedded_artifacts, embedded_uri


def server_command(storage: Path, host: str, port: int) -> list[str]:
    """``mlflow server`` on the embedded SQLite store, one worker (several take ~20 s to start on 2 cores)."""
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    return [
        mlflow,
        "server",
        "--backend-store-uri",
        embedded_uri(storage),
        "--default-artifact-root",
        embedded_artifacts(storage),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def serve(storage: Path, host: str, port: int) -> int:
    """Run the server in the foreground until interrupted; returns its exit code."""
    try:
        return subprocess.call(server_command(storage, host, port))
    except KeyboardInterrupt:
        return 0
