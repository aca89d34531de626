"""Run `sweeps ...` as its own process and time it from its first line, so that import time
(which on a busy machine dominates) is not mistaken for the launcher's own delay."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass


@dataclass
class Ran:
    code: int | None  # None: killed at the timeout
    out: str
    #: seconds from the first line of output to the exit (or to the kill)
    after_first_line: float


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> Ran:
    """`sweeps ARGS` in its own session; killed (with everything it started) after ``timeout`` seconds."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    first: list[float] = []

    def read() -> None:
        for line in process.stdout:
            first.append(first[0] if first else time.monotonic())
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    end = time.monotonic()
    reader.join(timeout=10)
    return Ran(code, "".join(lines), end - (first[0] if first else end))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
