"""The Ray Train worker group's placement group, noted down so the sweep can give it back.

Ray Train reserves its workers' CPUs and GPUs in a placement group that its controller
creates. When Tune stops a trial early (ASHA), the controller dies with the trial, but its
placement group does not: it belongs to the sweep's Ray job, and Ray Train's own cleaner
asks the Ray dashboard's state API whether the controller is alive — a local sweep runs
no dashboard, so it never learns. The reservation would then stay until the sweep ends, and
a later trial that needs those CPUs would wait for them forever. So rank 0 notes the group
in the trial's folder, and the sweep's driver removes it once the trial has ended.
"""

from __future__ import annotations

import logging
from pathlib import Path

#: one placement group id (hex) per line, one line per attempt of the trial
WORKER_GROUPS = "_worker_groups.txt"

log = logging.getLogger(__name__)


def record_worker_group(trial_dir: Path) -> None:
    """Note the placement group this worker runs in (called by rank 0 as it starts)."""
    import ray.util

    group = ray.util.get_current_placement_group()
    if group is None:  # not under Ray Train (a bare run): nothing to give back
        return
    with (trial_dir / WORKER_GROUPS).open("a") as handle:
        handle.write(group.id.hex() + "\n")


def release_worker_groups(trial_dir: Path) -> int:
    """Remove the trial's recorded placement groups that still exist; returns how many it removed.

    Safe whatever way the trial ended: a group Ray Train already removed is skipped, and
    removing one whose workers still run stops them (the trial is over by then).
    """
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    path = trial_dir / WORKER_GROUPS
    if not path.is_file():
        return 0
    removed = 0
    for line in path.read_text().split():
        group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(line)))
        state = placement_group_table(group).get("state")
        if state in (None, "REMOVED"):
            continue
        remove_placement_group(group)
        log.info("released the worker group %s of %s (%s)", line, trial_dir.name, state)
        removed += 1
    path.unlink()
    return removed
