"""The function every Ray Train worker runs: its rank and device from Ray, then ``trainers.run``."""

from __future__ import annotations

import os
from pathlib import Path


def train_loop_per_worker(config: dict) -> None:
    """Ray Train's per-worker entry point; ``config`` is built by ``trainers.trainable``."""
    import torch

    if not config["use_gpu"]:
        # Before DeepSpeed is imported: its CPU accelerator, not a guess, and gloo collectives.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))

    import ray.train
    import ray.train.torch

    from trainers.data import Example
    from trainers.placement import record_worker_group
    from trainers.run import PARAMS, Worker, run

    context = ray.train.get_context()
    if context.get_world_rank() == 0:
        record_worker_group(Path(config["trial_dir"]))
    device = str(ray.train.torch.get_device()) if config["use_gpu"] else "cpu"
    worker = Worker(context.get_world_rank(), context.get_world_size(), device)
    kind = config["kind"]
    run(
        kind,
        PARAMS[kind].from_params(config["params"]),
        [Example.from_dict(e) for e in config["train"]],
        [Example.from_dict(e) for e in config["held_out"]],
        Path(config["trial_dir"]),
        worker,
        report=lambda metrics: ray.train.report(metrics),
    )
