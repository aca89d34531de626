"""The sft and grpo workloads end to end: real Ray Train workers, DeepSpeed over gloo, TRL, MLflow.

Each test is one sweep launch (or two, for resume), so they are few and each checks a lot:
the learning signal on SmolLM2 with two ZeRO-2 workers, GRPO rewards per step, ASHA early
stopping as the core records it (and the CPUs it gives back), and trials that survive
`kill -9` of their launcher or of a worker.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sweep_helpers import child_runs, finished_label, run_file, sweeps_cli
from typer.testing import CliRunner

import sweeps
from sweeps import cli
from sweeps.runner import local_cpus
from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri
from trainers.arithmetic import arithmetic_rows, write_dataset, write_jsonl
from trainers.checkpoints import MARKER, checkpoint_step, latest_checkpoint

pytestmark = pytest.mark.slow


def history(storage: Path, run_id: str, metric: str) -> dict[int, float]:
    """A metric's value per MLflow step, as mirrored while the trial ran (the final mirror is left out)."""
    client = MlflowClient(embedded_uri(storage))
    values: dict[int, float] = {}
    for point in sorted(client.get_metric_history(run_id, metric), key=lambda p: p.timestamp):
        values.setdefault(point.step, point.value)
    return values


@pytest.fixture
def trainer_sweep(sweep_file):
    def make(name: str, workload: str = "sft", **spec):
        spec.setdefault("experiment", name)
        spec.setdefault("max_concurrent", 1)
        return sweep_file(name=name, workload=workload, **spec)

    return make


def test_sft_on_two_zero2_workers_learns_the_answer_format(ray_session, trainer_sweep, smollm2, tmp_path):
    """SmolLM2 answers arithmetic in prose; a few LoRA steps teach it to answer with \\boxed{} alone."""
    # a short system turn replaces SmolLM2's long default one: short sequences, short CPU steps
    data = write_jsonl(tmp_path / "arithmetic.jsonl", arithmetic_rows(120, seed=0, kind="sft", system="Be brief."))
    path = trainer_sweep(
        "sft-learn",
        fixed={
            "model": "smollm2-135m-instruct",
            "dataset": str(data),
            "num_workers": 2,
            "zero_stage": 2,
            "max_steps": 6,
            "batch_size": 2,
            "learning_rate": 3e-3,
            "lora_r": 8,
            "lora_alpha": 16,
            "save_steps": 3,
            "eval_fraction": 0.1,
            "max_new_tokens": 8,
            "eval_base_model": True,
        },
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 1, out
    (trial,) = plan.trials
    store = SweepStore(plan.spec.sweep_dir)
    record = store.result(trial.key)
    metrics, info = record["metrics"], record["info"]
    # the learning signal: the held-out format rate rises from the base model's
    assert metrics["base_eval_format_ok_rate"] <= 0.25
    assert metrics["eval_format_ok_rate"] >= metrics["base_eval_format_ok_rate"] + 0.5
    assert metrics["eval_empty_rate"] == 0 and "eval_accuracy" in metrics
    assert info["world_size"] == 2 and info["global_step"] == 6 and info["resumed_from_step"] == 0
    assert info["lora_targets"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    # every rank's ZeRO-2 optimizer shard is in the trial's folder, and the checkpoint is marked complete
    trial_dir = store.trial_dir(trial.key)
    shards = sorted(p.name for p in (trial_dir / "checkpoints" / "checkpoint-3" / "global_step3").iterdir())
    assert (
        "zero_pp_rank_0_mp_rank_00_optim_states.pt" in shards and "zero_pp_rank_1_mp_rank_00_optim_states.pt" in shards
    )
    assert latest_checkpoint(trial_dir / "checkpoints") == trial_dir / "checkpoints" / "checkpoint-6"
    generations = [json.loads(line) for line in (trial_dir / "eval_generations.jsonl").read_text().splitlines()]
    assert len(generations) == info["held_out_rows"] == 12
    assert sum(g["format_ok"] for g in generations) / 12 == pytest.approx(metrics["eval_format_ok_rate"])

    # per logging step in MLflow: loss, learning rate, grad norm, tokens/s; eval_loss at the eval steps
    storage = plan.spec.storage_path
    (run,) = child_runs(storage, "sft-learn")
    for metric in ("loss", "learning_rate", "grad_norm"):
        assert set(range(1, 7)) <= set(history(storage, run.info.run_id, metric)), metric
    assert set(range(2, 7)) <= set(history(storage, run.info.run_id, "tokens_per_s"))
    assert {3, 6} <= set(history(storage, run.info.run_id, "eval_loss"))
    losses = history(storage, run.info.run_id, "loss")
    assert losses[6] < losses[1] / 2
    client = MlflowClient(embedded_uri(storage))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "adapter",
        "chat_example.txt",
        "eval_generations.jsonl",
        "result.json",
    }
    assert "adapter/adapter_model.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}


def test_grpo_runs_steps_and_logs_each_reward(ray_session, trainer_sweep, tiny_model, tmp_path):
    data = write_dataset(tmp_path / "grpo.jsonl", count=40, kind="grpo")
    path = trainer_sweep(
        "grpo-steps",
        workload="grpo",
        fixed={
            "model": str(tiny_model),
            "dataset": str(data),
            "max_steps": 2,
            "batch_size": 4,
            "num_generations": 4,
            "max_completion_length": 8,
            "rewards": {"boxed_match": 1.0, "format": 0.5, "length_penalty": 0.1},
            "save_steps": 2,
            "max_new_tokens": 4,
        },
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 1, out
    record = SweepStore(plan.spec.sweep_dir).result(plan.trials[0].key)
    metrics = record["metrics"]
    assert record["info"]["global_step"] == 2
    for name in ("boxed_match", "format", "length_penalty"):
        assert f"rewards/{name}/mean" in metrics and f"rewards/{name}/std" in metrics
    assert -1.0 <= metrics["rewards/length_penalty/mean"] < 0
    assert 0 < metrics["completions/mean_length"] <= 8
    storage = plan.spec.storage_path
    (run,) = child_runs(storage, "grpo-steps")
    for metric in ("reward", "reward_std", "rewards/format/mean", "rewards/boxed_match/std", "completions/mean_length"):
        assert {1, 2} <= set(history(storage, run.info.run_id, metric)), metric
    # one meaning per step: a curve keeps its global steps, each with one value; a final metric is one point
    client = MlflowClient(embedded_uri(storage))
    for metric in metrics:
        values: dict[int, set[float]] = {}
        for point in client.get_metric_history(run.info.run_id, metric):
            values.setdefault(point.step, set()).add(point.value)
        assert all(len(v) == 1 for v in values.values()), (metric, values)
    for metric in ("eval_accuracy", "train_runtime"):
        assert len(client.get_metric_history(run.info.run_id, metric)) == 1, metric


def test_asha_stops_a_poor_lora_trial_and_the_next_trial_gets_its_cpus(trainer_sweep, tiny_model, tmp_path):
    """Each trial's workers need the whole machine, so the trial after a stopped one runs only
    if the stopped trial's worker group was given back (Ray Train alone keeps it reserved on a
    local Ray). A launcher of its own, so that a regression fails on the timeout, not hangs."""
    data = write_dataset(tmp_path / "sft.jsonl", count=60, kind="sft")
    storage = tmp_path / "runs"
    path = trainer_sweep(
        "asha",
        storage=str(storage),
        resources={"cpu": local_cpus(), "gpu": 0},
        scheduler={"type": "asha", "metric": "eval_loss", "mode": "min", "grace_period": 2, "reduction_factor": 2},
        fixed={
            "model": str(tiny_model),
            "dataset": str(data),
            "max_steps": 8,
            "batch_size": 4,
            "zero_stage": 0,
            "save_steps": 4,
            "eval_steps": 2,
            "max_new_tokens": 4,
        },
        # the first trial sets the bar at the first rung; a learning rate of 0 cannot beat it;
        # the third trains like the first (only its eval generation length differs), so it
        # passes the first rung
        grid={"run": [{"learning_rate": 3e-3}, {"learning_rate": 0.0}, {"learning_rate": 3e-3, "max_new_tokens": 5}]},
    )
    launcher = sweeps_cli("launch", str(path))
    try:
        output, _ = launcher.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        output, _ = launcher.communicate()
        pytest.fail(f"the sweep did not finish: the trial after the stopped one never got its CPUs\n{output[-3000:]}")
    assert launcher.returncode == 0, output
    plan, _ = sweeps.plan_file(path, [])
    good, poor, third = plan.trials
    store = SweepStore(plan.spec.sweep_dir)
    assert store.result(good.key)["metrics"]["step"] == 8
    stopped = store.result(poor.key)
    assert stopped["status"] == "stopped" and stopped["stopped_by"] == "asha on eval_loss"
    assert stopped["metrics"]["step"] == 2 and stopped["metrics"]["eval_loss"] > 0
    ran = store.result(third.key)  # it trains like the first, but a tie at a rung is not guaranteed
    assert ran["status"] in ("completed", "stopped") and ran["metrics"]["step"] >= 2, output

    status = CliRunner().invoke(cli.app, ["status", "asha", "--storage", str(storage)], env={"COLUMNS": "200"})
    assert f"stopped {poor.key}" in status.output
    tags = {r.data.tags["sweeps.trial_key"]: r.data.tags for r in child_runs(storage, "asha")}
    assert tags[poor.key]["sweeps.status"] == "stopped"
    assert tags[good.key]["sweeps.status"] == finished_label(store.result(good.key))
    exported = tmp_path / "asha.csv"
    result = CliRunner().invoke(
        cli.app, ["export", "asha", "--format", "csv", "-o", str(exported), "--storage", str(storage)]
    )
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in csv.DictReader(exported.open())}
    assert rows[poor.key]["status"] == "stopped" and float(rows[poor.key]["eval_loss"]) > 0
    assert rows[good.key]["status"] == "done" and rows[third.key]["status"] in ("done", "stopped")


#: steps of the trainings that are interrupted and resumed: a checkpoint every 4, so the kill
#: (right after the first one, or the second) lands well before the end
RESUMED_STEPS = 24


def test_a_trial_killed_with_its_launcher_resumes_from_its_checkpoint(trainer_sweep, tiny_model, tmp_path):
    data = write_dataset(tmp_path / "sft.jsonl", count=60, kind="sft")
    storage = tmp_path / "runs"
    path = trainer_sweep(
        "killed-sft",
        storage=str(storage),
        fixed={
            "model": str(tiny_model),
            "dataset": str(data),
            "num_workers": 2,
            "zero_stage": 2,
            "max_steps": RESUMED_STEPS,
            "batch_size": 2,
            "save_steps": 4,
            "eval_steps": RESUMED_STEPS,
            "max_new_tokens": 4,
        },
    )
    store = SweepStore(storage / "killed-sft")
    launcher = sweeps_cli("launch", str(path))
    deadline = time.monotonic() + 400
    checkpoints = None
    while time.monotonic() < deadline:
        assert launcher.poll() is None, launcher.stdout.read()
        found = list((storage / "killed-sft").glob(f"*/checkpoints/checkpoint-*/{MARKER}"))
        if found:
            checkpoints = found[0].parent.parent
            break
        time.sleep(0.2)
    assert checkpoints is not None, "no checkpoint was written in time"
    os.kill(launcher.pid, signal.SIGKILL)  # the launcher only, as `kill -9 <pid>` would
    launcher.wait()
    time.sleep(2)  # the local Ray it started goes down with it, workers included
    key = checkpoints.parent.name
    assert store.result(key) is None, "the trial finished before it could be interrupted"
    resume_from = latest_checkpoint(checkpoints)
    killed_at = int(resume_from.name.split("-")[1])
    assert 4 <= killed_at < RESUMED_STEPS

    resumed = sweeps_cli("resume", "killed-sft", "--storage", str(storage))
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    record = store.result(key)
    assert record["status"] == "completed" and record["attempt"] == 2
    # the step count goes on from the checkpoint: it does not restart from zero
    assert record["info"]["resumed_from_step"] >= killed_at and record["info"]["global_step"] == RESUMED_STEPS
    (run,) = child_runs(storage, "killed-sft")  # the same MLflow run, reattached
    steps = history(storage, run.info.run_id, "step")
    after = sorted(s for s in steps if s > record["info"]["resumed_from_step"])
    assert after[0] == record["info"]["resumed_from_step"] + 1 and after[-1] == RESUMED_STEPS
    assert min(steps) == 1  # the first attempt's steps are in the same run


def _train_worker_pids() -> list[int]:
    """Processes of Ray Train workers (Ray titles them ``ray::RayTrainWorker...``)."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "ray::RayTrainWorker" in line]


def test_a_trial_whose_worker_died_resumes_from_its_checkpoint(ray_session, trainer_sweep, tiny_model, tmp_path):
    """kill -9 of a Ray Train worker mid-training: with `retries: 1` Tune retries the trial from
    its checkpoint; killed again, it fails (nothing lost: its checkpoints stay), and `sweeps
    resume` continues it from the latest one. All three attempts log to the same MLflow run."""
    data = write_dataset(tmp_path / "sft.jsonl", count=60, kind="sft")
    storage = tmp_path / "runs"
    path = trainer_sweep(
        "dead-worker",
        storage=str(storage),
        retries=1,
        fixed={
            "model": str(tiny_model),
            "dataset": str(data),
            "max_steps": RESUMED_STEPS,
            "batch_size": 2,
            "zero_stage": 2,
            "save_steps": 4,
            "eval_steps": RESUMED_STEPS,
            "max_new_tokens": 4,
        },
    )
    kills: list[tuple[int, int]] = []  # (pid, the latest complete checkpoint's step when killed)

    def latest_step() -> int:
        found = [checkpoint_step(m.parent) for m in (storage / "dead-worker").glob(f"*/checkpoints/*/{MARKER}")]
        return max(found, default=0)

    def kill_twice() -> None:
        """Once after the first checkpoint, then in the retry, after it saved a later one."""
        deadline = time.monotonic() + 500
        while len(kills) < 2 and time.monotonic() < deadline:
            after = kills[-1][1] if kills else 0
            pids = [p for p in _train_worker_pids() if p not in {pid for pid, _ in kills}]
            step = latest_step()
            if pids and step > after:
                os.kill(pids[0], signal.SIGKILL)
                kills.append((pids[0], step))
            time.sleep(0.2)

    killer = threading.Thread(target=kill_twice, daemon=True)
    killer.start()
    plan, summary, out = run_file(path)
    killer.join()
    assert len(kills) == 2, f"killed {kills}\n{out}"
    (trial,) = plan.trials
    store = SweepStore(plan.spec.sweep_dir)
    failed = store.result(trial.key)
    assert summary.failed == 1 and failed["status"] == "failed" and failed["attempt"] == 2, out
    # the retry said why, and went on from the first checkpoint
    assert "retrying after an error: the process of Ray Train worker rank 0 died" in " ".join(out.split())
    killed_at = checkpoint_step(latest_checkpoint(store.trial_dir(trial.key) / "checkpoints"))
    assert kills[0][1] < killed_at < RESUMED_STEPS
    # what happened and what to do, not Ray's "Training failed due to worker errors:"
    message = failed["error"]["message"]
    assert message.startswith("the process of Ray Train worker rank 0 died"), message
    assert f"`sweeps resume dead-worker` continues from its checkpoint at step {killed_at}" in message

    resumed = CliRunner().invoke(cli.app, ["resume", "dead-worker", "--storage", str(storage)], env={"COLUMNS": "200"})
    assert resumed.exit_code == 0, resumed.output
    record = store.result(trial.key)
    assert record["status"] == "completed" and record["attempt"] == 3
    assert record["info"]["resumed_from_step"] == killed_at and record["info"]["global_step"] == RESUMED_STEPS
    (run,) = child_runs(storage, "dead-worker")  # the same MLflow run, reattached
    steps = history(storage, run.info.run_id, "step")
    assert min(steps) == 1 and max(steps) == RESUMED_STEPS
