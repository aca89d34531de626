"""The contract between the sweep core and a workload.

Dependencies point one way: of ``sweeps``, workload packages (evaluators, trainers) import
only this module, for the result types both sides share; it imports nothing heavy. They
satisfy the Protocol structurally and declare their parameters as plain dataclasses; the
core validates them, keys the trials, wraps the trainable so that every trial records
``result.json``, and mirrors everything to MLflow.

What a trainable sees and returns (``params`` and ``context`` are plain values):

- a single trial gets ``{"params", "context"}``: ``params`` is the trial's full parameters
  (validated, defaults filled in); ``context`` holds ``sweep``, ``key``, ``trial_dir`` (a folder
  in storage it owns), ``workload``, ``launch_dir`` and ``resources`` (the sweep file's
  ``{cpu, gpu}``, for trainables that launch workers of their own, such as a Ray Train group);
- a workload with ``group_key`` gets a trial group instead: ``{"members": [{"params",
  "context"}, ...]}`` — trials that share work (one prefill) and run as one Ray Tune trial;
- intermediate results (``tune.report`` or a class trainable's ``step``) are plain dicts of
  progress metrics, mirrored to MLflow at their ``step`` when they have one (a training's global
  step, which goes on after a resume), else at Tune's ``training_iteration``;
- the end of a trial is a :class:`TrialResult` (returned by a function trainable, or by a class
  trainable's last ``step``); the end of a group is a :class:`GroupResult`, one result or
  exception per member. The core writes each member's ``result.json`` from it.

A workload's optional ``demand(params, cpu, gpu)`` says what one trial holds at once, as a
``TrialDemand``: its own reservation (``driver``) and any worker group it launches, so that a
trial no node or cluster could ever hold is refused before launch instead of waiting forever.
Without it, the core takes ``resources()`` as the whole demand.

A workload's optional ``launch_notes(results)`` gets the ``result.json`` records of the trials a
launch ran and returns lines the launcher prints under its results (what trial groups saved).

A schema's optional ``check()`` returns ``(field, message)`` pairs, or
``(field, message, choices)`` when the value must be one of a set, for rules that span
fields or depend on registries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

HEALTH_PREFIX = "health."
#: an intermediate result's x-axis in MLflow, when the trainable reports one
STEP = "step"
#: a metric's direction, as in Tune's ``mode``: higher is better / lower is better
HIGHER, LOWER = "max", "min"


@dataclass
class TrialResult:
    """How a trial ended well: what the core records in ``result.json`` and mirrors to MLflow."""

    #: numeric results (NaN and infinities are dropped, never logged as numbers)
    metrics: dict[str, float]
    #: names of files or folders in the trial's folder to keep as MLflow artifacts
    artifacts: list[str] = field(default_factory=list)
    #: JSON facts about the run that are not metrics (load timings, the device, the worker)
    info: dict[str, Any] = field(default_factory=dict)
    #: ``name → value`` strings for the MLflow run; ``health.*`` tags are shown as warnings
    tags: dict[str, str] = field(default_factory=dict)
    #: ``metric → reason`` for metrics that could not be computed (reported, never as 0)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class GroupResult:
    """How a trial group ended: each member's result, or the exception that failed it alone."""

    #: trial key → its result
    results: dict[str, TrialResult] = field(default_factory=dict)
    #: trial key → why that member failed (the others are unaffected)
    failures: dict[str, BaseException] = field(default_factory=dict)


class Resources(TypedDict, total=False):
    """Resources Ray must find together on one node: CPU and GPU counts, memory in bytes."""

    cpu: float
    gpu: float
    memory: float


class WorkerGroup(TypedDict):
    """Workers a trial launches itself (a Ray Train worker group), each placed on its own."""

    count: int
    #: the trial parameter that sets ``count``, which errors name and suggest a smaller value of
    param: str
    each: Resources


class TrialDemand(TypedDict, total=False):
    """Everything one trial holds at once (plain values, so workloads need not import sweeps)."""

    #: what Tune reserves for the trial itself (its driver)
    driver: Resources
    workers: WorkerGroup


@runtime_checkable
class Workload(Protocol):
    """A kind of trial: its parameter schemas, its trainable and how its trials are shown."""

    name: str
    description: str
    #: parameters whose values are mappings, so a list of mappings under them is an axis
    literal_keys: frozenset[str]
    #: metrics shown in `sweeps status` and the end-of-launch table, in order; the first is the
    #: sweep's main metric (the report's fronts, heatmaps and "best")
    key_metrics: tuple[str, ...]
    #: metric → ``"max"`` (higher is better) or ``"min"`` (lower is better), for "best" and Pareto
    #: fronts; a metric not listed (a learning rate, a token count) has no better direction
    metric_directions: Mapping[str, str]
    #: whether Tune should keep actors (and what they loaded) across trials
    reuse_actors: bool

    def schemas(self, params: Mapping[str, object]) -> Sequence[type]:
        """The dataclasses that together define this trial's flat parameters.

        Chosen from the params themselves (e.g. the technique named decides which
        technique dataclass applies). Must not load models or touch the network.
        """

    def trainable(self) -> Any:
        """The Ray Tune trainable (class or function) that runs one trial."""

    def resources(self, params: Mapping[str, object], cpu: float, gpu: float) -> Any:
        """Ray resources for one trial: a dict, or a PlacementGroupFactory for multi-worker trials."""

    def run_name(self, params: Mapping[str, object], varying: Collection[str]) -> str:
        """A short readable name for the trial's MLflow run."""

    def catalog(self) -> Mapping[str, Mapping[str, type]]:
        """Named parts this workload offers (e.g. ``techniques``, ``tasks``) for `sweeps list`."""

    def group_key(self, params: Mapping[str, object]) -> str | None:
        """Trials with equal keys may run as one trial group, sharing work; None: this trial runs alone.

        A workload that ever returns a key has a trainable that takes ``{"members": [...]}``
        and ends with a GroupResult (a group of one included).
        """

    def release(self, trial_dir: Path) -> None:
        """Free what the trial holds in the cluster beyond Tune's own reservation.

        Called in the sweep's driver after the trial ended, whatever the way (done, stopped
        early, failed, or failed and about to be retried). A trial that launches workers of its
        own (a Ray Train worker group) may leave them reserved when Tune stops it; this is
        where they are given back. Must be safe to call when there is nothing to free.
        """
