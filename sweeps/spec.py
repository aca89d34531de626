"""The sweep file: loading, ``--set`` overrides, and validation of its top-level keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sweeps.errors import FieldError, SpecError
from sweeps.validation import build

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Resources(BaseModel):
    """Per-trial resources Ray reserves for each trial."""

    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1, ge=0)
    gpu: float = Field(0, ge=0)


class SchedulerSpec(BaseModel):
    """Early stopping of poor trials with Ray Tune's ASHA, on a metric the trials report as they go."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["asha"] = "asha"
    metric: str
    mode: Literal["min", "max"] = "min"
    #: what the rungs count: a training's global ``step`` (it goes on after a resume), or
    #: Tune's ``training_iteration`` (results reported so far)
    time_attr: str = "step"
    grace_period: int = Field(1, ge=1)
    #: the last rung is below this; trials are never stopped for reaching it (they end on their own)
    max_t: int = Field(100_000, ge=1)
    reduction_factor: float = Field(3, gt=1)


class SweepSpec(BaseModel):
    """A validated sweep file. Trial parameters (``fixed``, ``grid``) are checked by the workload."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    workload: str
    experiment: str | None = None
    storage: str = "./runs"
    tracking: str | None = None
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int | None = Field(None, ge=1)
    retries: int = Field(0, ge=0)
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] = Field(default_factory=dict)
    scheduler: SchedulerSpec | None = None

    @field_validator("tracking")
    @classmethod
    def _tracking_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?|sqlite|postgresql|mysql|file|databricks)[:+]", value):
            raise ValueError("expected null (embedded store) or a tracking URI such as http://host:5000")
        return value

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    @property
    def storage_path(self) -> Path:
        return Path(self.storage).expanduser().resolve()

    @property
    def sweep_dir(self) -> Path:
        return self.storage_path / self.name


_INDEX = re.compile(r"^(?P<key>[^\[\]]+)(?P<idx>(\[\d+\])*)$")


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``--set path=value`` to the raw file; the value is parsed as YAML.

    Paths are dotted keys with optional list indices: ``fixed.samples=4``,
    ``grid.method[2].cache_size=[128,256]``. Missing mapping keys are created.
    """
    if "=" not in assignment:
        raise SpecError([FieldError("--set", f"{assignment!r} has no '='", hint="write --set fixed.samples=4")])
    path, _, text = assignment.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise SpecError([FieldError(f"--set {path}", f"value {text!r} is not valid YAML: {exc}")]) from None
    steps: list[str | int] = []
    for part in path.strip().split("."):
        match = _INDEX.match(part)
        if not match:
            raise SpecError(
                [FieldError("--set", f"bad path {path!r}", hint="e.g. fixed.samples or grid.method[0].cache_size")]
            )
        steps.append(match["key"])
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match["idx"])]
    node: Any = raw
    for i, step in enumerate(steps[:-1]):
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise SpecError([FieldError(f"--set {path}", f"{_render_path(steps[:i])} has no item {step}")])
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise SpecError([FieldError(f"--set {path}", f"{_render_path(steps[:i])} is not a mapping")])
            node = node.setdefault(step, {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError([FieldError(f"--set {path}", f"{_render_path(steps[:-1])} has no item {last}")])
    elif not isinstance(node, dict):
        raise SpecError([FieldError(f"--set {path}", f"{_render_path(steps[:-1])} is not a mapping")])
    node[last] = value


def _render_path(steps: list[str | int]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else s)
    return out or "(file)"


def read_raw(path: Path) -> dict:
    """The sweep file as a mapping, with a clear error for unreadable or non-mapping YAML."""
    if not path.is_file():
        raise SpecError([FieldError(str(path), "no such sweep file")])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError([FieldError(str(path), f"not valid YAML: {exc}")]) from None
    if not isinstance(raw, dict):
        raise SpecError([FieldError(str(path), "a sweep file is a mapping with keys name, workload, fixed, grid, ...")])
    return raw


def parse(raw: dict, source: str | None = None) -> SweepSpec:
    """Validate the top level of a raw sweep mapping."""
    spec, errors = build(SweepSpec, raw, {k: k for k in raw}, required_where="(top level)")
    if errors:
        raise SpecError(errors, source)
    assert spec is not None
    return spec


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[SweepSpec, dict]:
    """Read, override and validate a sweep file; returns the spec and the raw (overridden) mapping."""
    path = Path(path)
    raw = read_raw(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return parse(raw, str(path)), raw
