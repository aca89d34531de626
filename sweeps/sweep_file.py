"""A sweep file read, checked and planned as ``sweeps launch`` does it.

One way in for the command line, notebooks and tests: the file (with ``--set`` overrides)
becomes its plan, and secrets that a launch stored redacted come back from the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sweeps import spec as spec_module
from sweeps.errors import FieldError, SpecError
from sweeps.plan import Plan, make_plan
from sweeps.secrets import REDACTED, fill_from_env, secret_leaves


def plan_file(file: str | Path, overrides: Sequence[str] = (), *, needs_secrets: bool = True) -> tuple[Plan, dict]:
    """The plan of a sweep file, and the file's contents with ``overrides`` applied.

    ``overrides`` are ``--set`` strings (``"fixed.samples=4"``). With ``needs_secrets``, secrets
    stored redacted ('***', as a launch keeps its copy of the file) are read from the
    environment; a missing one is a SpecError that names its variable. Bad input of any kind
    is a SpecError in the file's own terms.
    """
    spec, raw = spec_module.load(file, list(overrides))
    if needs_secrets and any(value == REDACTED for _, value in secret_leaves(raw)):
        _secrets_from_env(raw, str(file))
        spec = spec_module.parse(raw, str(file))
    try:
        return make_plan(spec), raw
    except SpecError as exc:
        raise SpecError(exc.errors, str(file)) from None


def _secrets_from_env(raw: dict, source: str) -> None:
    """Fill the file's redacted secrets (as `sweeps launch` stores them) from the environment, in place."""
    missing = fill_from_env(raw)
    if missing:
        raise SpecError(
            [
                FieldError(
                    path,
                    f"this secret is stored redacted ('{REDACTED}') and the environment variable {var} is not set",
                    REDACTED,
                    hint=f"export {var}=<the secret> and run again",
                )
                for path, var in missing
            ],
            source,
        )
