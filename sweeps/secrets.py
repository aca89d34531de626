"""Keys whose values are secrets: never shown, stored, logged to MLflow, exported, or hashed into trial keys.

A secret is a credential, not an experimental axis: it is the same for every trial of a
sweep, and storage keeps it redacted (``***``). Where a redacted secret is needed again
(`sweeps resume` reads the stored sweep file), it comes from the environment variable named
like its key in upper case (:func:`env_var`: ``hf_token`` → ``HF_TOKEN``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

# A name ends in one of these words (hf_token, db_password, client_secret), or contains one of
# the compound markers. Plurals such as ``max_new_tokens`` or ``sink_tokens`` are counts, not secrets.
_SECRET_WORD = re.compile(r"(^|_)(token|password|passwd|secret|credentials?|apikey)$")
_SECRET_PART = ("api_key", "apikey", "access_key", "secret_key", "private_key", "password", "secret")
REDACTED = "***"
#: secret values shorter than this are not scrubbed from free text (they would match everywhere)
_MIN_SCRUB = 6
_seen: set[str] = set()


@functools.lru_cache(maxsize=4096)  # asked for every key of every trial of a plan
def is_secret(key: str) -> bool:
    name = re.sub(r"[^a-z0-9]+", "_", key.lower())
    return bool(_SECRET_WORD.search(name)) or any(part in name for part in _SECRET_PART)


def _hidden(value: Any) -> bool:
    """Whether a value under a secret key is something to hide (null and '' say nothing)."""
    return value not in (None, "")


def redact(data: Any) -> Any:
    """A copy of ``data`` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if is_secret(str(k)) and _hidden(v) else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


class Hidden:
    """Stands in for a secret's value in a message: says what kind of value it was, never the value."""

    def __init__(self, value: Any):
        kinds = ((type(None), "null"), (bool, "true/false"), (str, "a string"), (int, "a number"), (float, "a number"))
        kinds += ((list, "a list"), (Mapping, "a mapping"))
        self.kind = next((word for cls, word in kinds if isinstance(value, cls)), type(value).__name__)

    def __str__(self) -> str:
        return f"{self.kind} (a secret, not shown)"

    __repr__ = __str__


def secret_leaves(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` of every secret-looking key in ``data``, at any depth."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            here = f"{path}.{k}" if path else str(k)
            if is_secret(str(k)):
                yield here, v
            else:
                yield from secret_leaves(v, here)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from secret_leaves(v, f"{path}[{i}]")


def env_var(key: str) -> str:
    """The environment variable that provides a redacted secret: its key in upper case (``HF_TOKEN``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def fill_from_env(raw: Any, path: str = "") -> list[tuple[str, str]]:
    """Replace every redacted secret in ``raw`` (in place) with its environment variable.

    Returns ``(path, variable)`` for each redacted secret the environment does not provide.
    """
    missing: list[tuple[str, str]] = []
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    for k, v in list(items):
        here = (f"{path}.{k}" if path else str(k)) if isinstance(raw, dict) else f"{path}[{k}]"
        if isinstance(raw, dict) and is_secret(str(k)) and v == REDACTED:
            value = os.environ.get(env_var(str(k)))
            if value:
                raw[k] = value
                remember(value)
            else:
                missing.append((here, env_var(str(k))))
        else:
            missing += fill_from_env(v, here)
    return missing


def remember(data: Any) -> None:
    """Note the secret values in ``data`` (or ``data`` itself, a secret string) so free text can be scrubbed."""
    if isinstance(data, (Mapping, list)):
        for _, value in secret_leaves(data):
            _remember_value(value)
    else:
        _remember_value(data)


def _remember_value(value: Any) -> None:
    if isinstance(value, (Mapping, list)):
        for item in value.values() if isinstance(value, Mapping) else value:
            _remember_value(item)
    elif _hidden(value) and value != REDACTED and len(str(value)) >= _MIN_SCRUB:
        _seen.add(str(value))


def remember_override(assignment: str) -> None:
    """Note the value of a ``--set path=value`` that assigns a secret, even one that is not valid YAML."""
    path, _, text = assignment.partition("=")
    if any(is_secret(part) for part in re.split(r"[.\[\]]+", path) if part):
        remember(text.strip())
        remember(text.strip().strip("'\""))


def scrub(text: str) -> str:
    """``text`` with every secret value seen in this process replaced by ``***``."""
    for value in sorted(_seen, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
