"""A trial larger than the Ray it would run on is refused before launch, in the sweep file's terms.

Ray Tune waits forever for resources no node has: two 2-CPU Ray Train workers on a 2-CPU machine
never start and never fail. The whole trial (its driver plus its worker group) is checked first:
on a local run before Ray starts, so nothing is written and no Ray process appears.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from cli_run import run_cli
from conftest import write_sweep

from sweeps.capacity import Bundle, Demand, Node, fits, problems, trial_demand
from sweeps.raycluster import local_cpus
from trainers.arithmetic import write_dataset
from trainers.workload import DRIVER_MEMORY, SFTWorkload

CPUS = local_cpus()
#: the launcher's own time from its first line to its exit 2 (imports come before the first line)
PROMPT_SECONDS = 30


def refused(tmp_path, path, *args: str):
    """Launch with a Ray temp folder of its own (short: Ray's socket paths have a length limit),
    where a Ray that started would leave its session."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    try:
        ran = run_cli("launch", str(path), *args, env={**env, "RAY_TMPDIR": str(ray_tmp)}, timeout=300)
        assert not (ray_tmp / "ray").exists(), "no Ray may start\n" + ran.out
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert ran.code == 2, ran.out
    assert "Traceback" not in ran.out, ran.out
    assert ran.after_first_line < PROMPT_SECONDS, f"{ran.after_first_line:.0f}s from the first line to the exit"
    assert not (tmp_path / "runs").exists(), "nothing may be written to storage"
    return ran.out


def sft_sweep(tmp_path, tiny_model, **fixed):
    data = write_dataset(tmp_path / "sft.jsonl", count=20, kind="sft")
    return write_sweep(
        tmp_path / "too-big.yaml",
        name="too-big",
        workload="sft",
        storage=str(tmp_path / "runs"),
        resources={"cpu": CPUS, "gpu": 0},
        fixed={"model": str(tiny_model), "dataset": str(data), "max_steps": 1, **fixed},
    )


def test_a_worker_group_larger_than_the_machine_is_refused_before_ray_starts(tmp_path, tiny_model):
    """num_workers: 2 × resources.cpu: all CPUs can never be placed: exit 2 in seconds, nothing written."""
    out = refused(tmp_path, sft_sweep(tmp_path, tiny_model, num_workers=2))
    assert f"num_workers: 2 × resources.cpu: {CPUS} + 0 for the trial's driver = {2 * CPUS} CPUs" in out, out
    assert f"the local Ray has {CPUS} CPUs" in out, out
    # what would fit: one worker with all the CPUs, or two with half of them each
    assert f"num_workers: 1 with resources.cpu: {CPUS}" in out, out
    if CPUS >= 2:
        assert f"resources.cpu: {CPUS // 2} with num_workers: 2" in out, out


def test_a_gpu_trial_on_a_machine_without_one_suggests_running_on_cpus(tmp_path, tiny_model):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = sft_sweep(tmp_path, tiny_model, num_workers=1)
    out = refused(tmp_path, path, "--set", "resources.gpu=1", "--set", "resources.cpu=1")
    assert "num_workers: 1 × resources.gpu: 1 + 0 for the trial's driver = 1 GPU" in out, out
    assert "the local Ray has 0 GPUs" in out and "resources.gpu: 0 with num_workers: 1 (on CPUs)" in out, out


def test_the_training_demand_counts_every_worker_and_the_driver(tiny_model):
    demand = trial_demand(SFTWorkload(), {"model": str(tiny_model), "num_workers": 3}, 2, 1)
    assert demand.bundles() == [Bundle(0, 0, DRIVER_MEMORY), Bundle(2, 1), Bundle(2, 1), Bundle(2, 1)]
    assert demand.total() == Bundle(6, 3, DRIVER_MEMORY)
    assert demand.workers_param == "num_workers"


def test_each_bundle_must_fit_on_one_node_not_only_in_the_totals():
    """Two nodes of 2 CPUs have 4 CPUs in all, but a 3-CPU worker fits on neither."""
    nodes = [Node(2, 0, 1e9), Node(2, 0, 1e9)]
    three = Demand(driver=Bundle(), worker=Bundle(cpu=3), workers=1, workers_param="num_workers")
    two_each = Demand(driver=Bundle(), worker=Bundle(cpu=2), workers=2, workers_param="num_workers")
    assert not fits(three.bundles(), nodes)
    assert fits(two_each.bundles(), nodes)

    def rebuild(cpu, gpu, workers):
        return Demand(driver=Bundle(), worker=Bundle(cpu=cpu, gpu=gpu), workers=workers, workers_param="num_workers")

    (error,) = problems(three, nodes, "the cluster", 3, 0, rebuild)
    assert "the cluster has 4 CPUs on 2 nodes, at most 2 CPUs on one" in error.render()
    assert error.accepted == "resources.cpu: 2 with num_workers: 1"
    assert problems(two_each, nodes, "the cluster", 2, 0, rebuild) == []


def test_a_sweep_that_fits_is_not_refused(tmp_path, tiny_model):
    """The check refuses only what can never run: one worker with every CPU fits (no trial is run here)."""
    from sweeps import plan_file
    from sweeps.raycluster import impossible, local_node

    path = sft_sweep(tmp_path, tiny_model, num_workers=1)
    plan, _ = plan_file(path)
    assert impossible(plan, plan.trials, [local_node()], "the local Ray") == []
    too_big, _ = plan_file(path, ["fixed.num_workers=2"])
    assert len(impossible(too_big, too_big.trials, [local_node()], "the local Ray")) == 1
