"""A network namespace with only loopback, for tests that run several servers or Ray nodes.

Ray rewrites 127.0.0.1 in an address to the machine's outward IP; inside a namespace whose
only network is loopback, every Ray node, the GCS, SLURM's daemons and the launcher use
127.0.0.1 and nothing can reach beyond the machine. Processes are started in it with
``nsenter``; ``stop`` ends exactly the processes that live in it, by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


def missing_tools(*tools: str) -> list[str]:
    """What this machine lacks for a namespace (and ``tools``); tests skip naming it, CI has it."""
    missing = [name for name in ("unshare", "nsenter", "ip", *tools) if shutil.which(name) is None]
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    return missing


class LoopbackNamespace:
    """A network namespace kept alive by one holder process, with loopback up."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "infinity"], start_new_session=True)
        self.netns = self._wait_for_namespace()
        self.run("ip", "link", "set", "lo", "up")
        # A second loopback address makes the resolver's AI_ADDRCONFIG see an IPv4 network, which
        # daemons that bind through getaddrinfo (slurmctld) need; traffic still stays on loopback.
        self.run("ip", "addr", "add", "127.0.0.2/8", "dev", "lo")

    def _wait_for_namespace(self) -> str:
        own = os.readlink("/proc/self/ns/net")
        for _ in range(100):
            with contextlib.suppress(FileNotFoundError):
                theirs = os.readlink(f"/proc/{self.holder.pid}/ns/net")
                if theirs != own:
                    return theirs
            time.sleep(0.05)
        raise RuntimeError("unshare -n did not create a network namespace")

    def command(self, *command: str) -> list[str]:
        """``command`` as run inside the namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-n", *command]

    def run(self, *command: str, timeout: float = 60, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*command), capture_output=True, text=True, timeout=timeout, check=check, **kwargs
        )

    def popen(self, *command: str, **kwargs: Any) -> subprocess.Popen:
        """A process in the namespace, in a session of its own (so a test can kill it as a group)."""
        return subprocess.Popen(self.command(*command), start_new_session=True, **kwargs)

    def pids(self) -> list[int]:
        """Every process that lives in the namespace."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(FileNotFoundError, PermissionError, ProcessLookupError):
                if os.readlink(entry / "ns" / "net") == self.netns:
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """End every process in the namespace (TERM, then KILL), then the namespace itself."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                if pid != self.holder.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            time.sleep(1)
        os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait(timeout=10)
