"""Whether one whole trial can ever be placed on the Ray it will run on, checked before launch.

Tune waits forever for resources no node has: a trial of two 2-CPU Ray Train workers on a
2-CPU machine never starts and never fails. So every trial's whole demand (its own
reservation plus the worker group it launches, see ``sweeps.workload.Demand``) is packed
onto the nodes' total resources first; what cannot be packed is bad input, reported in the
sweep file's terms with what would fit instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sweeps.errors import FieldError

#: the bundle fields, and how a message counts them
_PLURAL = {"cpu": "CPUs", "gpu": "GPUs", "memory": "memory"}
_SLACK = 1e-9


@dataclass(frozen=True)
class Bundle:
    """Resources Ray must find together on one node (memory in bytes)."""

    cpu: float = 0.0
    gpu: float = 0.0
    memory: float = 0.0

    @classmethod
    def of(cls, resources: Mapping[str, object]) -> Bundle:
        """From a workload's plain mapping, in its own (``cpu``) or Ray's (``CPU``) spelling."""
        return cls(
            cpu=float(resources.get("cpu", resources.get("CPU", 0))),  # type: ignore[arg-type]
            gpu=float(resources.get("gpu", resources.get("GPU", 0))),  # type: ignore[arg-type]
            memory=float(resources.get("memory", 0)),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Demand:
    """One trial's bundles: its driver, ``workers`` × ``worker`` (set by ``workers_param``), and any others."""

    driver: Bundle
    worker: Bundle | None = None
    workers: int = 0
    workers_param: str | None = None
    extra: tuple[Bundle, ...] = ()

    def bundles(self) -> list[Bundle]:
        group = [self.worker] * self.workers if self.worker is not None else []
        return [self.driver, *group, *self.extra]

    def total(self) -> Bundle:
        bundles = self.bundles()
        return Bundle(*(sum(getattr(b, kind) for b in bundles) for kind in _PLURAL))


@dataclass(frozen=True)
class Node:
    """One node's total resources (what it could hold with nothing else running)."""

    cpu: float
    gpu: float
    memory: float


#: the demand of the same trial with other ``resources.cpu``, ``resources.gpu`` and worker count
Rebuild = Callable[[float, float, int], Demand]


def trial_demand(workload: object, params: Mapping[str, object], cpu: float, gpu: float) -> Demand:
    """The workload's ``demand()`` (see ``sweeps.workload.TrialDemand``), else its ``resources()`` as the whole."""
    declare = getattr(workload, "demand", None)
    if callable(declare):
        declared = declare(params, cpu, gpu)
        group = declared.get("workers")
        if not group:
            return Demand(driver=Bundle.of(declared.get("driver", {})))
        return Demand(
            driver=Bundle.of(declared.get("driver", {})),
            worker=Bundle.of(group["each"]),
            workers=int(group["count"]),
            workers_param=group["param"],
        )
    reserved = workload.resources(params, cpu, gpu)  # type: ignore[attr-defined]
    bundles = [Bundle.of(b) for b in getattr(reserved, "bundles", None) or [reserved]]
    return Demand(driver=bundles[0], extra=tuple(bundles[1:]))


def fits(bundles: Sequence[Bundle], nodes: Sequence[Node]) -> bool:
    """Whether every bundle finds a node at once (first fit, largest bundles first)."""
    free = [[n.cpu, n.gpu, n.memory] for n in nodes]
    for bundle in sorted(bundles, key=lambda b: (b.gpu, b.cpu, b.memory), reverse=True):
        need = (bundle.cpu, bundle.gpu, bundle.memory)
        for room in free:
            if all(want <= have + _SLACK for want, have in zip(need, room, strict=True)):
                for i, want in enumerate(need):
                    room[i] -= want
                break
        else:
            return False
    return True


def _only(bundles: Sequence[Bundle], kind: str) -> list[Bundle]:
    """The bundles reduced to one kind of resource, to tell which kind does not fit."""
    return [Bundle(**{kind: getattr(b, kind)}) for b in bundles]


def _amount(value: float, kind: str) -> str:
    if kind == "memory":
        return f"{value / 1024**3:.3g} GiB of memory"
    return f"{value:g} {_PLURAL[kind] if value != 1 else _PLURAL[kind][:-1]}"


def _needs(demand: Demand, kind: str) -> str:
    """E.g. ``num_workers: 2 × resources.cpu: 2 + 0 for the trial's driver = 4 CPUs``."""
    total = _amount(getattr(demand.total(), kind), kind)
    if kind == "memory":
        return total
    driver = getattr(demand.driver, kind)
    if demand.worker is None or not demand.workers:
        return f"resources.{kind}: {driver:g} per trial"
    each = getattr(demand.worker, kind)
    count = f"{demand.workers_param or 'workers'}: {demand.workers}"
    return f"{count} × resources.{kind}: {each:g} + {driver:g} for the trial's driver = {total}"


def _has(nodes: Sequence[Node], kind: str, where: str) -> str:
    values = [getattr(n, kind) for n in nodes]
    if len(nodes) == 1:
        return f"{where} has {_amount(values[0], kind)}"
    most = _amount(max(values), kind)
    return f"{where} has {_amount(sum(values), kind)} on {len(nodes)} nodes, at most {most} on one"


def suggestions(demand: Demand, nodes: Sequence[Node], cpu: float, gpu: float, rebuild: Rebuild) -> list[str]:
    """Smaller settings of the same trial that would fit: fewer workers, or fewer CPUs/GPUs each.

    ``cpu``/``gpu`` are the file's ``resources``; ``rebuild(cpu, gpu, workers)`` gives the
    demand of the same trial with other settings.
    """
    found = []
    if demand.workers_param and demand.workers > 1:
        fewer = [n for n in range(demand.workers - 1, 0, -1) if fits(rebuild(cpu, gpu, n).bundles(), nodes)]
        if fewer:
            found.append(f"{demand.workers_param}: {fewer[0]} with resources.cpu: {cpu:g}")
    same = f" with {demand.workers_param}: {demand.workers}" if demand.workers_param else ""
    less_cpu = [c for c in range(math.ceil(cpu) - 1, 0, -1) if fits(rebuild(c, gpu, demand.workers).bundles(), nodes)]
    if less_cpu:
        found.append(f"resources.cpu: {less_cpu[0]}{same}")
    less_gpu = [g for g in range(math.ceil(gpu) - 1, -1, -1) if fits(rebuild(cpu, g, demand.workers).bundles(), nodes)]
    if gpu > 0 and less_gpu:
        found.append(f"resources.gpu: {less_gpu[0]}{same}" + (" (on CPUs)" if less_gpu[0] == 0 else ""))
    return found


def problems(
    demand: Demand,
    nodes: Sequence[Node],
    where: str,
    cpu: float,
    gpu: float,
    rebuild: Rebuild,
    trials: int = 1,
    of: int = 1,
) -> list[FieldError]:
    """Why ``demand`` can never be placed on ``nodes`` (none when it fits), in the sweep file's terms.

    ``where`` names the Ray (``the local Ray``, ``the cluster``); ``trials`` of ``of`` have this demand.
    """
    bundles = demand.bundles()
    if fits(bundles, nodes):
        return []
    short = [kind for kind in _PLURAL if not fits(_only(bundles, kind), nodes)] or ["cpu"]
    needs = "; ".join(f"{_needs(demand, kind)}, but {_has(nodes, kind, where)}" for kind in short)
    which = f" ({trials} of {of} trials)" if trials != of else ""
    alternatives = suggestions(demand, nodes, cpu, gpu, rebuild)
    larger = "launch on a larger cluster with --address"
    return [
        FieldError(
            "resources",
            f"one trial{which} can never be placed: it needs {needs}",
            accepted=", or ".join(alternatives) if alternatives else None,
            hint=f"or {larger}" if alternatives else larger,
        )
    ]


def cluster_nodes() -> list[Node]:
    """The connected Ray's live nodes with their total resources."""
    import ray

    return [
        Node(cpu=r.get("CPU", 0.0), gpu=r.get("GPU", 0.0), memory=r.get("memory", 0.0))
        for r in (n["Resources"] for n in ray.nodes() if n.get("Alive"))
    ]


def growth_limit() -> Node | None:
    """What an autoscaling cluster may grow to (as one node), or None for a cluster that cannot grow.

    An autoscaler publishes its node types and their maximum counts to the cluster (Ray Train
    checks its worker groups against the same record); a cluster of ``ray start`` nodes, a SLURM
    allocation or a local Ray publishes none.
    """
    try:
        from ray._private.state import state

        limits = state.get_max_resources_from_cluster_config()
    except Exception:  # an older or newer Ray without this record: assume it may grow, and warn
        return Node(cpu=math.inf, gpu=math.inf, memory=math.inf)
    if not limits:
        return None
    return Node(cpu=limits.get("CPU", 0), gpu=limits.get("GPU", 0), memory=limits.get("memory", math.inf))
