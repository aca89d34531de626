"""A storage that runs out of space: noticed at the first write that fails, wherever it happens.

Writes to storage happen in several places of the launching process — the store's JSON files,
MLflow's embedded SQLite database and artifact copies (in the mirror's thread), Tune's own
state — and in the trials (whose errors reach the launcher as text). Each of them reports a
failed write here; the first one that failed for lack of space (``ENOSPC``, ``EDQUOT``, SQLite's
"database or disk is full") is remembered, the sweep stops, and the launcher says once what is
full and how to go on, instead of passing on every library's error.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: how the lack of space reads in errors that arrive as text (a trial's error, SQLite's message)
FULL_WORDS = ("No space left on device", "Disk quota exceeded", "database or disk is full", "StorageFull")


@dataclass(frozen=True)
class FullEvent:
    """The first write that failed for lack of space."""

    where: str
    reason: str


class StorageFull(OSError):
    """A write to storage failed for lack of space (raised by the store's own writes; ``filename`` is
    the file). Built as ``OSError(errno, strerror, filename)``, so it travels between Ray processes."""


class SweepStoppedFull(Exception):
    """The sweep was stopped because its storage is full; the message is what the user reads."""


_lock = threading.Lock()
_first: FullEvent | None = None


def means_full(exc: BaseException | str | None) -> bool:
    """Whether an error (with its causes), or an error's text, says that storage is out of space."""
    if exc is None:
        return False
    if isinstance(exc, str):
        return any(words in exc for words in FULL_WORDS)
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in FULL_ERRNOS:
            return True
        if "database or disk is full" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def note(exc: BaseException | str | None, where: str = "") -> bool:
    """Remember ``exc`` if it is the first failure for lack of space; returns whether it was one."""
    global _first
    if not means_full(exc):
        return False
    with _lock:
        if _first is None:
            reason = "disk quota exceeded" if "quota" in str(exc).lower() else "no space left"
            _first = FullEvent(where or getattr(exc, "filename", None) or "", reason)
    return True


def first() -> FullEvent | None:
    """The first failure for lack of space in this process, if any."""
    return _first


def reset() -> None:
    """Forget an earlier event (a new launch in the same process starts clean)."""
    global _first
    with _lock:
        _first = None


def free_bytes(path: Path) -> int:
    """Free space for ``path``'s file system, from its nearest existing folder."""
    here = Path(path).expanduser().absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


#: library loggers that report a failed write in their own words (with tracebacks and SQL): Tune
#: saving its experiment state (which the platform never restores from), MLflow's SQL store, and
#: Ray's note on a trial error nobody fetched. Their full-storage records are noted and dropped.
LIBRARY_LOGGERS = ("ray.tune.execution.experiment_state", "mlflow.store.db.utils", "ray._private.worker")


class NoteAndDropFull(logging.Filter):
    """Takes note of a library's full-storage error and drops the record; other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (note(error) or note(record.getMessage()))


def watch_libraries() -> None:
    """Notice a full storage wherever a library meets it, in any thread; say it once, ourselves.

    SQLite's "database or disk is full" is noted from any SQLAlchemy engine (MLflow's embedded
    store); the loggers in LIBRARY_LOGGERS drop their own reports of it. Idempotent.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "handle_error", _sql_error):
        event.listen(Engine, "handle_error", _sql_error)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoteAndDropFull) for f in logger.filters):
            logger.addFilter(NoteAndDropFull())


def _sql_error(context: object) -> None:
    note(getattr(context, "original_exception", None), "the MLflow tracking database")


#: free space a launch needs at least: the embedded MLflow database (measured: 0.93 MB once created,
#: with its migrations, a parent run and one trial's run), room for SQLite's journal, and the first
#: trial results; with a tracking server, only the results
MIN_FREE_EMBEDDED = 4 * 1024**2
MIN_FREE_SERVER = 1 * 1024**2


def space_problem(storage: Path, embedded_tracking: bool) -> str | None:
    """Why ``storage`` is too small to start a sweep in, or None."""
    need = MIN_FREE_EMBEDDED if embedded_tracking else MIN_FREE_SERVER
    free = free_bytes(storage)
    if free >= need:
        return None
    what = "the embedded MLflow database and the first results" if embedded_tracking else "the first results"
    return f"has {_size(free)} free; a sweep needs at least {_size(need)} there for {what}"


def stopped_message(event: FullEvent, storage: str, name: str, kept: int, total: int) -> str:
    """The one message a sweep stopped by a full storage ends with."""
    where = f" (writing {event.where})" if event.where else ""
    return (
        f"the storage {storage} is full: {event.reason}{where}. The sweep stopped there; "
        f"{kept} of {total} trial result(s) are kept. Free space, then run: sweeps resume {name} --storage {storage}"
    )


def _size(count: int) -> str:
    return f"{count / 1024**2:.1f} MB" if count >= 1024**2 else f"{count / 1024:.0f} KB"
