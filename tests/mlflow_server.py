"""A real `mlflow server` process for tests that hang it (SIGSTOP), kill it and start it again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from sweeps.ui import server_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    """Until the server at ``url`` answers /health; fails when ``proc`` (the server or what started it) exits."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, "the MLflow server exited"
        assert time.monotonic() < deadline, f"the MLflow server did not answer in {seconds} s"
        time.sleep(0.5)


class MlflowServer:
    """`mlflow server --workers 1` on 127.0.0.1 with an embedded store of its own, in its own session.

    Signals go to the whole process group (uvicorn and its helpers), so a stop hangs all of it.
    """

    def __init__(self, store: Path, port: int | None = None):
        self.store = store
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            server_command(self.store, "127.0.0.1", self.port),
            # no job runner beside the server: the tests track runs only, and it halves the start on a busy machine
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_until_healthy()

    def wait_until_healthy(self, seconds: float = 300) -> None:
        wait_until_healthy(self.url, self.proc, seconds)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def hang(self) -> None:
        self.signal(signal.SIGSTOP)

    def wake(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.wake()
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


class SweepsUi:
    """`sweeps ui NAME` as a user runs it, in its own session: the link it prints, and its server.

    The server it starts has no job runner beside it (as ``MlflowServer``): it halves the start.
    """

    def __init__(self, sweep: str, storage: Path, port: int | None = None):
        self.sweep, self.storage = sweep, storage
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    def start(self, seconds: float = 300) -> str:
        """Start it; returns the runs-table link it printed, once its server answers."""
        import sys
        import threading

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        command = [sys.executable, "-m", "sweeps.cli", "ui", self.sweep, "--storage", str(self.storage)]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + seconds
        while "Ctrl-C" not in "".join(self.lines):  # its last line (the link) says how to stop it
            assert self.proc.poll() is None, f"`sweeps ui` ended before it printed its link: {''.join(self.lines)}"
            assert time.monotonic() < deadline, f"`sweeps ui` printed no link in {seconds} s: {''.join(self.lines)}"
            time.sleep(0.2)
        wait_until_healthy(self.url, self.proc, max(deadline - time.monotonic(), 30))
        return self.link("open ")

    def link(self, after: str) -> str:
        """The first URL printed after ``after``."""
        for line in self.lines:
            if after in line:
                return line.split(after, 1)[1].split()[0]
        raise AssertionError(f"no {after!r} in {''.join(self.lines)}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
