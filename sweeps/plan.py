"""From a validated sweep spec to the list of trials, each with its stable key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sweeps import registry
from sweeps.errors import FieldError, SpecError
from sweeps.grid import expand
from sweeps.secrets import REDACTED, env_var, is_secret, redact, secret_leaves
from sweeps.spec import SweepSpec
from sweeps.validation import validate_params
from sweeps.workload import Workload

KEY_LENGTH = 10


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def trial_key(workload: str, params: Mapping[str, object]) -> str:
    """Short stable hash of a trial's canonical config; secrets never enter it."""
    public = redact({k: v for k, v in params.items() if not is_secret(k)})
    digest = hashlib.sha256(canonical_json({"workload": workload, "params": public}).encode()).hexdigest()
    return digest[:KEY_LENGTH]


@dataclass(frozen=True)
class Trial:
    """One cell of the grid after validation.

    ``canonical`` is the form (defaults dropped) that the key hashes; ``config`` the full
    effective parameters that the trial runs with (its ``params`` in Tune's config) and that
    tables and MLflow show.
    """

    key: str
    canonical: dict[str, object]
    config: dict[str, object]
    sources: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class Plan:
    """The trials of a sweep in grid order, and which parameters vary between them."""

    spec: SweepSpec
    workload: Workload
    trials: list[Trial]
    varying: list[str]
    duplicates: int = 0

    def run_name(self, trial: Trial) -> str:
        return self.workload.run_name(redact(trial.config), self.varying)

    def by_key(self) -> dict[str, Trial]:
        return {t.key: t for t in self.trials}

    def records(self) -> list[dict]:
        """Key, readable name and (secret-free) config of every trial, as plan.json and tables hold them."""
        return [{"key": t.key, "name": self.run_name(t), "params": redact(t.config)} for t in self.trials]


def varying_keys(trials: list[Trial]) -> list[str]:
    """Parameters that take different values among the trials that have them.

    A parameter only some trials have (``data_dir`` of the data tasks) varies only if those
    trials disagree on it: run names show what distinguishes trials, not what merely applies.
    Secrets never count (a run name is shown everywhere).
    """
    values: dict[str, set[str]] = {}
    for trial in trials:
        for k, v in redact(trial.config).items():
            if not is_secret(k):
                values.setdefault(k, set()).add(canonical_json(v))
    return [k for k, seen in values.items() if len(seen) > 1]


def varying_secrets(cells: list[tuple[dict[str, object], dict[str, str]]]) -> list[FieldError]:
    """One error per secret that differs between trials (``(config, sources)`` of each valid cell).

    A secret is a credential, not an axis: trial keys ignore it, so two tokens would
    silently collapse into one trial, and a varying value would end up in run names.
    """
    leaves = [dict(secret_leaves(config)) for config, _ in cells]
    errors = []
    for path in sorted({p for found in leaves for p in found}):
        values = {canonical_json(found.get(path) if found.get(path) != "" else None) for found in leaves}
        if len(values) < 2:
            continue
        top = re.split(r"[.\[]", path)[0]
        key = re.split(r"[.\[\]]+", path.rstrip("]"))[-1]
        places = sorted(
            {
                re.sub(r"\[\d+\]$", "", sources.get(top, top)) + path[len(top) :]
                for (_, sources), found in zip(cells, leaves, strict=True)
                if found.get(path) not in (None, "")
            }
        )
        unset = " (some trials leave it unset)" if canonical_json(None) in values else ""
        errors.append(
            FieldError(
                ", ".join(places) or path,
                f"the secret {key!r} differs between trials{unset}",
                REDACTED,
                hint=f"secrets are credentials, not experimental axes: set {key} once in fixed, "
                f"or write {key}: '{REDACTED}' there and export {env_var(key)}",
            )
        )
    return errors


def make_plan(spec: SweepSpec) -> Plan:
    """Expand and validate every trial; raise one SpecError listing every problem found."""
    workload = registry.get(spec.workload)
    cells = expand(spec.fixed, spec.grid, workload.literal_keys)
    errors: list[FieldError] = []
    trials: dict[str, Trial] = {}
    valid: list[tuple[dict[str, object], dict[str, str]]] = []
    duplicates = 0
    memo: dict = {}  # cells share most of their parts: each distinct part is validated once
    for cell in cells:
        try:
            config, canonical = validate_params(workload.schemas(cell.params), cell.params, cell.sources, memo)
        except SpecError as exc:
            errors += exc.errors
            continue
        valid.append((config, cell.sources))
        key = trial_key(workload.name, canonical)
        if key in trials:
            duplicates += 1
            continue
        trials[key] = Trial(key=key, canonical=canonical, config=config, sources=cell.sources)
    errors += varying_secrets(valid)
    if errors:
        raise SpecError(errors)
    ordered = list(trials.values())
    return Plan(spec=spec, workload=workload, trials=ordered, varying=varying_keys(ordered), duplicates=duplicates)
