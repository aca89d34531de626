"""The sweep's folder in storage: the source of truth for what ran, what finished and how.

Layout under ``<storage>/<sweep name>/``::

    sweep.yaml         the sweep file as last launched (overrides applied, secrets redacted); `sweeps resume` reads it
    plan.json          every trial key with its parameters and run name, in grid order
    launch.json        host and pid of the launching process, to tell running from interrupted
    <key>/started.json written by the trial when it starts (attempt, host, pid, time)
    <key>/result.json  written by the trial when it ends: config, metrics, status, error, timings, versions
    <key>/...          the trial's artifacts (generations.jsonl, checkpoints, adapters)
    _tune/             Ray Tune's own experiment state

Every file is written atomically (temp file + rename), so a kill at any moment leaves
either the old or the new version, never half a result; a write that fails for lack of space
raises :class:`~sweeps.storage_full.StorageFull` and is remembered for the launcher. Reading is
as careful: a file that is not what it should be (cut off, not JSON, a list, a folder) counts as
absent — a trial whose ``result.json`` is unreadable is not finished — with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweeps import storage_full
from sweeps.secrets import redact

log = logging.getLogger(__name__)

RESULT = "result.json"
STARTED = "started.json"
SPEC = "sweep.yaml"
PLAN = "plan.json"
LAUNCH = "launch.json"

DONE, STOPPED, RUNNING, FAILED, PENDING = "done", "stopped", "running", "failed", "pending"
COMPLETED_STATUS = "completed"
#: ended early by the sweep's scheduler (ASHA): final like a completed trial, with the metrics it reached
STOPPED_STATUS = "stopped"
FINAL_STATUSES = (COMPLETED_STATUS, STOPPED_STATUS)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``; StorageFull when the storage has no space for it."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and storage_full.note(exc, str(path)):
            raise storage_full.StorageFull(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


_warned: set[str] = set()


def read_json(path: Path, kind: type = dict) -> Any | None:
    """``path``'s JSON when it is a ``kind``; None when absent or unreadable (warned about once)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a folder, cut off, not JSON, not UTF-8
        return _unreadable(path, type(exc).__name__ if isinstance(exc, OSError) else "not valid JSON")
    if not isinstance(data, kind):
        return _unreadable(path, f"a JSON {type(data).__name__}, not an object")
    return data


def _unreadable(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("%s is unreadable (%s): treated as absent", path, why)
    return None


def now() -> float:
    return time.time()


def process_alive(host: str, pid: int) -> bool | None:
    """Whether a process lives; None when it runs on another host and cannot be checked."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class TrialState:
    """What storage says about one trial."""

    key: str
    status: str
    result: dict | None
    started: dict | None
    note: str = ""


class SweepStore:
    """Reads and writes one sweep's folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def trial_dir(self, key: str) -> Path:
        return self.root / key

    # -- the sweep ---------------------------------------------------------------------------
    def save_spec(self, raw: dict) -> None:
        """Keep the sweep file for `sweeps resume`, secrets redacted (resume takes them from the environment)."""
        write_text(self.root / SPEC, yaml.safe_dump(redact(raw), sort_keys=False))

    def spec_path(self) -> Path:
        return self.root / SPEC

    def save_plan(self, trials: list[dict]) -> None:
        write_json(self.root / PLAN, {"trials": trials})

    def plan(self) -> list[dict]:
        trials = (read_json(self.root / PLAN) or {}).get("trials")
        return [t for t in trials if isinstance(t, dict) and "key" in t] if isinstance(trials, list) else []

    def mark_launch(self) -> None:
        write_json(self.root / LAUNCH, {"host": socket.gethostname(), "pid": os.getpid(), "started_at": now()})

    def clear_launch(self) -> None:
        (self.root / LAUNCH).unlink(missing_ok=True)

    def launcher(self) -> dict | None:
        return read_json(self.root / LAUNCH)

    def launcher_alive(self) -> bool | None:
        """True/False for a launcher on this host; None when unknown (another host) or absent."""
        info = self.launcher()
        if not info or not isinstance(info.get("pid"), int):
            return False
        return process_alive(str(info.get("host")), info["pid"])

    # -- trials ------------------------------------------------------------------------------
    def result(self, key: str) -> dict | None:
        return read_json(self.trial_dir(key) / RESULT)

    def write_result(self, key: str, record: dict) -> None:
        write_json(self.trial_dir(key) / RESULT, record)

    def started(self, key: str) -> dict | None:
        return read_json(self.trial_dir(key) / STARTED)

    def write_started(self, key: str, record: dict) -> None:
        write_json(self.trial_dir(key) / STARTED, record)

    def is_done(self, key: str) -> bool:
        """Completed or stopped by the scheduler: nothing left to run for this trial."""
        result = self.result(key)
        return bool(result and result.get("status") in FINAL_STATUSES)

    def result_keys(self) -> list[str]:
        """Keys of every trial folder that holds a result, planned or not."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{RESULT}"))

    def state(self, key: str, launcher_alive: bool | None = None) -> TrialState:
        """done / stopped / running / failed / pending, from the trial's files and the launcher's life."""
        result, started = self.result(key), self.started(key)
        if result and result.get("status") == COMPLETED_STATUS:
            return TrialState(key, DONE, result, started)
        if result and result.get("status") == STOPPED_STATUS:
            return TrialState(key, STOPPED, result, started, note=result.get("stopped_by", "stopped early"))
        restarted = started and (not result or started.get("time", 0) > result.get("finished_at", 0))
        if restarted:
            if launcher_alive is None:
                launcher_alive = self.launcher_alive()
            if launcher_alive is not False:
                return TrialState(key, RUNNING, result, started)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(started.get("time", 0)))
            return TrialState(key, PENDING, result, started, note=f"interrupted (started {when})")
        if result:
            return TrialState(key, FAILED, result, started, note=(result.get("error") or {}).get("message", ""))
        return TrialState(key, PENDING, None, started)
