"""Where a sweep writes: ``storage`` and ``tracking`` checked before anything is written there.

Only what is certainly wrong is refused (a file where a folder must be, a system folder, a URL
that names no host, a database whose folder does not exist): a cluster's shared storage may
well not exist on the laptop that plans the sweep.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sweeps.errors import describe

#: pseudo-filesystems: nothing written there is kept (``/dev/shm`` is a real tmpfs and allowed)
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")
#: bytes a file name may have on Linux and macOS filesystems
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def storage_problem(storage: str, name: str) -> str | None:
    """Why results cannot be written under ``storage/name``, or None when they can be (as far as plan knows)."""
    if not storage.strip():
        return "is empty; give a folder such as ./runs"
    if "\0" in storage:
        return f"{describe(storage)} contains a NUL character"
    try:
        path = Path(os.path.abspath(Path(storage).expanduser()))
    except (RuntimeError, OSError, ValueError) as exc:
        return f"{describe(storage)} is not a usable path ({exc})"
    too_long = [p for p in path.parts if len(p.encode()) > MAX_NAME_BYTES]
    if too_long or len(str(path).encode()) > MAX_PATH_BYTES:
        return f"{describe(storage)} is too long a path for the filesystem"
    text = str(path)
    system = next((s for s in SYSTEM_FOLDERS if text == s or text.startswith(s + "/")), None)
    if system and not (text == "/dev/shm" or text.startswith("/dev/shm/")):
        return f"{describe(storage)} is inside {system}, a system folder where results cannot be kept"
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            what = "is" if existing == path else f"is inside {describe(str(existing))}, which is"
            return f"{describe(storage)} {what} a file, not a folder"
        sweep_dir = path / name
        if path.is_dir() and sweep_dir.exists() and not sweep_dir.is_dir():
            return f"{describe(str(sweep_dir))} (where this sweep's results go) is a file, not a folder"
    except OSError as exc:
        return f"{describe(storage)} cannot be used: {exc.strerror or exc}"
    return None


def shown_uri(uri: str) -> str:
    """A tracking URI as it may be printed: a password in it is replaced by ``***``."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return uri.split("@", 1)[-1] if "@" in uri else uri


def tracking_problem(uri: str) -> str | None:
    """Why ``uri`` is not an MLflow tracking URI that can work, or None."""
    shown = describe(shown_uri(uri))
    accepted = "null (the embedded store under storage) or a URI such as http://host:5000 or sqlite:////abs/mlflow.db"
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        return f"{shown} is not a tracking URI; expected {accepted}"
    if any(c.isspace() for c in uri) or "\0" in uri:
        return f"{shown} contains spaces or control characters"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        return f"{shown} is not a valid URI ({exc})"
    if scheme in ("http", "https", "postgresql", "mysql", "mssql"):
        if not parts.hostname:
            return f"{shown} names no host; expected e.g. {scheme}://host:5000"
        if port == 0:
            return f"{shown} has port 0"
    if scheme == "sqlite":
        return _sqlite_problem(uri, shown)
    if scheme == "file":
        folder = Path(parts.path).parent if parts.path else None
        if folder is None or not parts.path.startswith("/"):
            return f"{shown} needs an absolute path: file:///abs/folder"
        if not folder.is_dir():
            return f"{shown}: the folder {describe(str(folder))} does not exist (MLflow would create it)"
    return None


def _sqlite_problem(uri: str, shown: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return f"{shown} names no database file; expected sqlite:///relative.db or sqlite:////abs/path.db"
    database = uri[len("sqlite:///") :].split("?", 1)[0]
    if not database or database.endswith("/"):
        return f"{shown} names no database file"
    if database == ":memory:":
        return f"{shown} keeps nothing after the sweep ends; use a file"
    try:
        folder = Path(database).expanduser().parent
        if not folder.is_dir():
            return f"the folder {describe(str(folder))} of {shown} does not exist (MLflow would create the whole tree)"
        if Path(database).is_dir():
            return f"{shown} is a folder, not a database file"
    except OSError as exc:
        return f"{shown} cannot be used: {exc.strerror or exc}"
    return None
