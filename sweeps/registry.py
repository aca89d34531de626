"""Workloads by name, discovered through the ``sweeps.workloads`` entry-point group.

Third-party packages add workloads by declaring an entry point; nothing here imports
evaluators or trainers directly, which keeps dependencies pointing one way.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from sweeps.errors import FieldError, SpecError, bad_choice
from sweeps.workload import Workload

GROUP = "sweeps.workloads"


@cache
def available() -> dict[str, EntryPoint]:
    """Entry points of every installed workload, by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@cache
def get(name: str) -> Workload:
    """The workload registered under ``name``; a SpecError with suggestions otherwise."""
    eps = available()
    if name not in eps:
        if not eps:
            raise SpecError(
                [
                    FieldError(
                        "workload",
                        "no workloads are installed",
                        name,
                        hint="install the project with `pip install -e .`",
                    )
                ]
            )
        raise SpecError([bad_choice("workload", name, sorted(eps))])
    workload = eps[name].load()()
    if not isinstance(workload, Workload):
        raise TypeError(f"entry point {name!r} does not provide the sweeps Workload interface")
    return workload
