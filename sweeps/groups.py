"""Trial groups: trials that share work run as one Ray Tune trial, each keeping its own identity.

A workload says which trials may share work (``Workload.group_key``); this module packs the
pending trials with equal keys into groups. Packing never leaves the cluster idle: there are
at least as many groups as trials that can run at once (while trials last), and no group is
larger than the sweep file's ``share_prefill.max_group``. Grid order is kept inside a group,
so members that share a scorer (one technique at several cache sizes) stay together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sweeps.plan import Plan, Trial

GroupKey = Callable[[Mapping[str, object]], "str | None"]


@dataclass(frozen=True)
class TrialGroup:
    """Trials run together as one Ray Tune trial (one member: a trial on its own)."""

    members: tuple[Trial, ...]

    @property
    def keys(self) -> list[str]:
        return [t.key for t in self.members]


def concurrent_slots(max_concurrent: int | None, cpus: float, gpus: float, cpu: float, gpu: float) -> int:
    """How many trials can run at once: the file's ``max_concurrent`` and what the cluster holds."""
    limits = [max_concurrent] if max_concurrent else []
    if cpu > 0:
        limits.append(max(1, math.floor(cpus / cpu)))
    if gpu > 0:
        limits.append(max(1, math.floor(gpus / gpu)))
    return max(1, min(limits)) if limits else 1


def _split(members: list[Trial], parts: int) -> list[list[Trial]]:
    """``members`` in ``parts`` consecutive runs of nearly equal size (grid order kept)."""
    size, extra = divmod(len(members), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        out.append(members[start:end])
        start = end
    return out


def pack(trials: Sequence[Trial], group_key: GroupKey | None, slots: int, max_group: int) -> list[TrialGroup]:
    """Groups of ``trials`` (in grid order of their first member) that keep ``slots`` trials busy.

    Trials whose key is None, or all trials when ``group_key`` is None or ``max_group`` is 1,
    run alone. Buckets of equal keys are cut into the fewest groups of at most ``max_group``;
    then, while there are fewer groups than ``slots``, the bucket with the largest groups is
    cut once more — so sharing only gives way where the cluster would otherwise idle.
    """
    if group_key is None or max_group <= 1:
        return [TrialGroup((t,)) for t in trials]
    buckets: dict[object, list[Trial]] = {}
    for index, trial in enumerate(trials):
        key = group_key(trial.config)
        buckets.setdefault(("alone", index) if key is None else key, []).append(trial)
    members = list(buckets.values())
    parts = [math.ceil(len(m) / max_group) for m in members]
    wanted = min(slots, len(trials))
    while sum(parts) < wanted:
        widest = max(range(len(members)), key=lambda i: (math.ceil(len(members[i]) / parts[i]), -i))
        if math.ceil(len(members[widest]) / parts[widest]) <= 1:
            break
        parts[widest] += 1
    groups = [TrialGroup(tuple(run)) for m, n in zip(members, parts, strict=True) for run in _split(m, n)]
    order = {t.key: i for i, t in enumerate(trials)}
    return sorted(groups, key=lambda g: order[g.members[0].key])


def describe(groups: Sequence[TrialGroup]) -> str:
    """One line for `sweeps plan` and the launch: how many trials run in how many groups."""
    trials = sum(len(g.members) for g in groups)
    largest = max((len(g.members) for g in groups), default=0)
    if largest <= 1:
        return f"{trials} trial(s), each on its own"
    return f"{trials} trial(s) in {len(groups)} group(s) of up to {largest}"


def plan_groups(plan: Plan, trials: Sequence[Trial], slots: int) -> list[TrialGroup]:
    """The groups ``trials`` of ``plan`` run in, by its workload's group key and the file's ``max_group``."""
    return pack(trials, plan.workload.group_key, slots, plan.spec.max_group)
