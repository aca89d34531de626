"""Ray Train's failure of a trial's workers, told as what happened and what to do next.

Ray Train wraps every worker failure in one ``WorkerGroupError`` whose message starts
"Training failed due to worker errors:" and then dumps actor metadata: the first line a
researcher sees says nothing. A worker that raised (a data error, CUDA out of memory) is
re-raised as that exception, so the trial fails with the real message; a worker whose
process died (killed, out of memory, crashed) becomes a ``WorkerDiedError`` that says so
and says where `sweeps resume` will continue from. Ray's full report stays chained.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainers.checkpoints import CHECKPOINTS, checkpoint_step, latest_checkpoint

_LOG_FILE = re.compile(r"log_file_path='([^']+)'")


class WorkerDiedError(RuntimeError):
    """A Ray Train worker's process died under the trial."""


def resume_hint(trial_dir: Path, sweep: str) -> str:
    """Where `sweeps resume` picks the trial up: its latest complete checkpoint, or the start."""
    checkpoint = latest_checkpoint(trial_dir / CHECKPOINTS)
    if checkpoint is None:
        return f"no checkpoint was complete yet: `sweeps resume {sweep}` starts the trial again"
    return f"`sweeps resume {sweep}` continues from its checkpoint at step {checkpoint_step(checkpoint)}"


def explain(error: BaseException, trial_dir: Path, sweep: str) -> BaseException:
    """The exception the trial should fail with, for an error raised by ``TorchTrainer.fit``."""
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    if not isinstance(error, WorkerGroupError) or not error.worker_failures:
        return error
    failures = sorted(error.worker_failures.items())
    died = [(rank, failure) for rank, failure in failures if isinstance(failure, WorkerHealthCheckFailedError)]
    if not died:
        # the lowest rank's own exception (Ray's report of every rank stays chained below it)
        return failures[0][1]
    # a dead process comes first: the other ranks' errors (a broken collective) follow from it
    rank, failure = died[0]
    log = _LOG_FILE.search(str(failure))
    where = f"its log: {log.group(1)}" if log else "its log is under /tmp/ray/session_latest/logs/train"
    # one line that fits the console and `sweeps status`; the log path below it
    return WorkerDiedError(
        f"the process of Ray Train worker rank {rank} died (killed, out of memory, or crashed); "
        f"{resume_hint(trial_dir, sweep)}\n{where}"
    )
