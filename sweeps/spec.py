"""The sweep file: loading, ``--set`` overrides, and validation of its top-level keys."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sweeps import secrets
from sweeps.errors import FieldError, SpecError, describe, shorten
from sweeps.locations import storage_problem, tracking_problem
from sweeps.safe_yaml import MAX_CHARACTERS, load_yaml
from sweeps.validation import build

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: a sweep's name names its folder and MLflow runs; longer names are typos or pastes
MAX_NAME = 100
#: dots and indices in one ``--set`` path
MAX_OVERRIDE_DEPTH = 32


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
    time_attr: Literal["step", "training_iteration"] = "step"
    grace_period: int = Field(1, ge=1)
    #: the last rung is below this; trials are never stopped for reaching it (they end on their own)
    max_t: int = Field(100_000, ge=1)
    reduction_factor: float = Field(3, gt=1)


class SharePrefill(BaseModel):
    """Trials that may share work (for evaluate: differ only in KV-cache compression) run as trial groups."""

    model_config = ConfigDict(extra="forbid")
    #: the most trials in one group; each member holds its own compressed cache and decode state
    max_group: int = Field(16, ge=1, le=1024)


class SweepSpec(BaseModel):
    """A validated sweep file. Trial parameters (``fixed``, ``grid``) are checked by the workload."""

    model_config = ConfigDict(extra="forbid")

    name: str
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
    #: ``true`` (groups of up to 16), ``{max_group: N}``, or ``false`` (``max_group: 1``: one
    #: configuration per trial). Trials of a sweep with a scheduler always run alone (ASHA
    #: compares trials one by one).
    share_prefill: SharePrefill = Field(default_factory=SharePrefill)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value) or len(value) > MAX_NAME:
            raise ValueError(
                f"{describe(value)} is not a sweep name: letters, digits, '.', '_' and '-', starting with a "
                f"letter or digit, at most {MAX_NAME} characters (it names the sweep's folder)"
            )
        return value

    @field_validator("share_prefill", mode="before")
    @classmethod
    def _share_prefill_switch(cls, value: object) -> object:
        if value is True:
            return {}
        if value is False:
            return {"max_group": 1}
        if not isinstance(value, dict):
            raise ValueError(f"{describe(value)} is not accepted; accepted: true, false, or {{max_group: N}}")
        return value

    @field_validator("tracking")
    @classmethod
    def _tracking_uri(cls, value: str | None) -> str | None:
        problem = tracking_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    def check(self) -> list[tuple[str, str]]:
        """Rules across fields and the filesystem: only checked once every field has its type."""
        problems = []
        storage = storage_problem(self.storage, self.name)
        if storage:
            problems.append(("storage", storage))
        if self.scheduler and self.scheduler.grace_period > self.scheduler.max_t:
            problems.append(
                (
                    "scheduler.grace_period",
                    f"{self.scheduler.grace_period} is above max_t ({self.scheduler.max_t}): "
                    "no trial would ever be compared",
                )
            )
        return problems

    @property
    def max_group(self) -> int:
        """The largest trial group this file allows (1: every trial on its own)."""
        return 1 if self.scheduler is not None else self.share_prefill.max_group

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
        raise SpecError([FieldError("--set", f"{describe(assignment)} has no '='", hint="write --set fixed.samples=4")])
    path, _, text = assignment.partition("=")
    value = load_yaml(text, where=f"--set {shorten(path, 80)}") if text.strip() else None
    parts = path.strip().split(".")
    if len(parts) > MAX_OVERRIDE_DEPTH:
        raise SpecError([FieldError("--set", f"the path {describe(path)} has more than {MAX_OVERRIDE_DEPTH} parts")])
    steps: list[str | int] = []
    for part in parts:
        match = _INDEX.match(part)
        if not match:
            raise SpecError(
                [
                    FieldError(
                        "--set", f"bad path {describe(path)}", hint="e.g. fixed.samples or grid.method[0].cache_size"
                    )
                ]
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
    """The sweep file as a mapping, with a clear error for unreadable, non-UTF-8 or non-mapping YAML."""
    source = shorten(str(path), 200)
    try:
        if path.is_dir():
            raise SpecError([FieldError(source, "is a folder, not a sweep file")])
        if not path.is_file():
            raise SpecError([FieldError(source, "no such sweep file")])
        data = path.read_bytes() if path.stat().st_size <= 4 * MAX_CHARACTERS else None
    except OSError as exc:
        raise SpecError([FieldError(source, f"cannot be read: {exc.strerror or exc}")]) from None
    if data is None:
        raise SpecError([FieldError(source, f"is larger than a sweep file can be ({MAX_CHARACTERS:,} characters)")])
    try:
        raw = load_yaml(decode(data))
    except SpecError as exc:
        raise SpecError(exc.errors, source) from None
    if not isinstance(raw, dict):
        raise SpecError([FieldError(source, "a sweep file is a mapping with keys name, workload, fixed, grid, ...")])
    return raw


def decode(data: bytes) -> str:
    """A sweep file's bytes as text: UTF-8 (a byte-order mark is dropped), anything else an error with its line."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or (
        b"\0" in data[:200]
    ):
        raise SpecError([FieldError("(file)", "is UTF-16 or UTF-32 text (or binary); save it as UTF-8")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start]
        raise SpecError(
            [
                FieldError(
                    f"line {line}, column {column}", f"byte 0x{byte:02x} is not UTF-8 text; save the file as UTF-8"
                )
            ]
        ) from None


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
    secrets.remember(raw)  # so that no message can echo a secret value of the file or of --set
    for assignment in overrides:
        secrets.remember_override(assignment)
        apply_override(raw, assignment)
        secrets.remember(raw)
    return parse(raw, str(path)), raw
