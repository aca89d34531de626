"""Secrets travel to trials beside Tune's config, never inside it.

Tune writes every trial's config into its experiment state under ``storage/_tune``, so the
config a trial gets from Tune holds its secrets redacted. The real values go through Ray's
object store (``tune.with_parameters``) and are put back in the trial's own process, just
before the workload sees its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweeps.secrets import redact


def held_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that hold a secret (at any depth), with their real values."""
    public = redact(dict(params))
    return {k: v for k, v in params.items() if public[k] != v}


def restore(config: dict, secrets: Mapping[str, Mapping[str, Any]]) -> dict:
    """A copy of a trial group's Tune config with each member's secrets put back; Tune's own stays redacted."""
    members = config["trial"]["members"]
    if not any(m["context"]["key"] in secrets for m in members):
        return config
    restored = [{**m, "params": {**m["params"], **secrets.get(m["context"]["key"], {})}} for m in members]
    return {**config, "trial": {**config["trial"], "members": restored}}


def with_secrets(trainable: Any, secrets: Mapping[str, Mapping[str, Any]]) -> Any:
    """``trainable`` (taking Tune's config) given each member's secrets, by trial key, from Ray's object store.

    Without secrets the trainable is returned as it is.
    """
    if not secrets:
        return trainable
    from ray import tune

    if isinstance(trainable, type):

        class WithSecrets(trainable):
            def setup(self, config: dict, secrets: Mapping | None = None) -> None:
                self._secrets = secrets or {}
                super().setup(restore(config, self._secrets))

            def reset_config(self, new_config: dict) -> bool:
                return super().reset_config(restore(new_config, self._secrets))

        WithSecrets.__name__ = WithSecrets.__qualname__ = trainable.__name__
        inner: Any = WithSecrets
    else:

        def inner(config: dict, secrets: Mapping | None = None) -> Any:
            return trainable(restore(config, secrets or {}))

        inner.__name__ = getattr(trainable, "__name__", "trial")
    return tune.with_parameters(inner, secrets=dict(secrets))
