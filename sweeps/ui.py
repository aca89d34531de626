"""Serving the MLflow UI on a sweep's embedded store."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
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
    """Run the server in the foreground until interrupted; returns its exit code.

    The server (uvicorn and its job runners) lives in its own process group, which goes down
    with this command however it ends — Ctrl-C or a SIGTERM — instead of holding the port.
    """
    server = subprocess.Popen(server_command(storage, host, port), start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(server)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_group(process: subprocess.Popen, seconds: float = 15) -> None:
    """Terminate the server's process group; kill what is left of it after ``seconds``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so that only live members keep the group
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
