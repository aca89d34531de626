"""Keys whose values are secrets: never logged to MLflow, exported, or hashed into trial keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A name ends in one of these words (hf_token, db_password, client_secret), or contains one of
# the compound markers. Plurals such as ``max_new_tokens`` or ``sink_tokens`` are counts, not secrets.
_SECRET_WORD = re.compile(r"(^|_)(token|password|passwd|secret|credentials?|apikey)$")
_SECRET_PART = ("api_key", "apikey", "access_key", "secret_key", "private_key", "password", "secret")
REDACTED = "***"


def is_secret(key: str) -> bool:
    name = re.sub(r"[^a-z0-9]+", "_", key.lower())
    return bool(_SECRET_WORD.search(name)) or any(part in name for part in _SECRET_PART)


def redact(data: Any) -> Any:
    """A copy of ``data`` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if is_secret(str(k)) else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
