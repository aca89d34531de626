"""Launching sweeps on a real local Ray with a real MLflow store (tiny model, so it is quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from sweep_helpers import child_runs, run_file
from typer.testing import CliRunner

import sweeps
from sweeps import cli
from sweeps.spec import SchedulerSpec
from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri

SECRET = "hf_do_not_log_me_42"
METRICS = {
    "score",
    "empty_rate",
    "kv_cache_mb",
    "peak_memory_mb",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "seconds_per_sample",
}


@pytest.fixture
def evaluate_sweep(sweep_file, tiny_model):
    def make(name="ev", grid=None, share_prefill=True, **fixed):
        return sweep_file(
            name=name,
            experiment=name,
            max_concurrent=1,
            share_prefill=share_prefill,
            fixed={
                "model": str(tiny_model),
                "task": "passkey",
                "context_length": 200,
                "samples": 2,
                "hf_token": SECRET,
                **fixed,
            },
            grid=grid
            if grid is not None
            else {
                "method": [
                    {"technique": "baseline"},
                    {"technique": "snapkv", "window_size": 8, "cache_size": [32, 64]},
                    {"technique": "streamingllm", "cache_size": 32},
                ]
            },
        )

    return make


def test_launch_records_every_trial_in_storage_and_mlflow(ray_session, evaluate_sweep, tmp_path):
    path = evaluate_sweep()
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 4 and summary.failed == 0 and summary.ran == 4
    store = SweepStore(plan.spec.sweep_dir)
    for trial in plan.trials:
        record = store.result(trial.key)
        assert record["status"] == "completed" and record["key"] == trial.key
        assert set(record["metrics"]) >= METRICS
        assert {"python", "torch", "transformers", "ray"} <= set(record["versions"])
        assert record["finished_at"] >= record["started_at"] and record["duration_s"] > 0
        assert record["params"]["hf_token"] == "***"
        lines = (store.trial_dir(trial.key) / "generations.jsonl").read_text().splitlines()
        assert len(lines) == 2 and {"output", "answer", "gold", "scores", "input_tokens"} <= set(json.loads(lines[0]))
        assert SECRET not in (store.trial_dir(trial.key) / "result.json").read_text()
    # kv_cache_mb is measured from the tensors: kept tokens x layers x kv heads x head dim x (k, v) x 4 bytes
    snap32 = next(t for t in plan.trials if t.config.get("cache_size") == 32 and t.config["technique"] == "snapkv")
    assert store.result(snap32.key)["metrics"]["kv_cache_mb"] == pytest.approx(32 * 3 * 2 * 16 * 2 * 4 / 2**20)

    client = MlflowClient(embedded_uri(plan.spec.storage_path))
    exp = client.get_experiment_by_name("ev")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    kids = [r for r in runs if r is not parent]
    assert len(kids) == 4
    by_key = {r.data.tags["sweeps.trial_key"]: r for r in kids}
    for trial in plan.trials:
        run = by_key[trial.key]
        record = store.result(trial.key)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.run_name == plan.run_name(trial) and run.info.status == "FINISHED"
        assert run.data.params["technique"] == trial.config["technique"] and "hf_token" not in run.data.params
        assert run.data.metrics["score"] == pytest.approx(record["metrics"]["score"])
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
            "result.json",
            "generations.jsonl",
        }
    assert by_key[snap32.key].info.run_name == "snapkv c32 · w8 avgpool"
    sweep_yaml = Path(client.download_artifacts(parent.info.run_id, "sweep.yaml", str(tmp_path)))
    assert SECRET not in sweep_yaml.read_text() and "hf_token: '***'" in sweep_yaml.read_text()
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_done"] == 4


def test_relaunch_skips_finished_trials_and_a_grown_grid_runs_only_new_cells(ray_session, evaluate_sweep):
    path = evaluate_sweep(
        name="grow", grid={"method": [{"technique": "snapkv", "window_size": 8, "cache_size": [32, 64]}]}
    )
    plan, first, _ = run_file(path)
    store = SweepStore(plan.spec.sweep_dir)
    stamps = {t.key: store.result(t.key)["finished_at"] for t in plan.trials}
    _, again, out = run_file(path)
    assert again.ran == 0 and again.skipped == 2 and "Skipping 2 completed" in out
    assert {t.key: store.result(t.key)["finished_at"] for t in plan.trials} == stamps
    grown, third, _ = run_file(path, "grid.method[0].cache_size=[32, 64, 96]")
    assert third.ran == 1 and third.skipped == 2 and third.counts["done"] == 3
    assert {t.key: store.result(t.key)["finished_at"] for t in plan.trials} == stamps
    kids = child_runs(plan.spec.storage_path, "grow")
    assert sorted(r.data.tags["sweeps.trial_key"] for r in kids) == sorted(t.key for t in grown.trials)


def test_relaunch_mirrors_results_a_killed_launcher_left_half_logged(ray_session, evaluate_sweep):
    path = evaluate_sweep(name="half", grid={"method": [{"technique": "streamingllm", "cache_size": [32, 48]}]})
    plan, _, _ = run_file(path)
    client = MlflowClient(embedded_uri(plan.spec.storage_path))
    run = child_runs(plan.spec.storage_path, "half")[0]
    # as if the launcher died inside the mirroring of this result: run still open, result on disk
    client.update_run(run.info.run_id, status="RUNNING")
    _, again, out = run_file(path)
    assert again.ran == 0 and "mirroring 1 result(s) that finished while no launcher was listening" in out
    kids = child_runs(plan.spec.storage_path, "half")
    assert len(kids) == 2 and {r.info.status for r in kids} == {"FINISHED"}


def test_a_failing_trial_is_recorded_and_the_others_go_on(ray_session, sweep_file, tiny_model_plain):
    path = sweep_file(
        name="fails",
        experiment="fails",
        retries=0,
        fixed={"model": str(tiny_model_plain), "task": "passkey", "context_length": 200, "samples": 1},
        grid={"chat_template": ["auto", "on", "off"]},
    )
    result = CliRunner().invoke(cli.app, ["launch", str(path)])
    assert result.exit_code == 1, result.output
    assert "1 trial(s) failed" in result.output
    plan, _ = sweeps.plan_file(path, [])
    store = SweepStore(plan.spec.sweep_dir)
    records = {t.config["chat_template"]: store.result(t.key) for t in plan.trials}
    assert records["auto"]["status"] == "completed" and records["off"]["status"] == "completed"
    assert records["on"]["status"] == "failed"
    assert records["on"]["error"]["type"] == "ChatTemplateError"
    assert "no chat template" in records["on"]["error"]["message"]
    failed = [r for r in child_runs(plan.spec.storage_path, "fails") if r.info.status == "FAILED"]
    assert len(failed) == 1 and "no chat template" in failed[0].data.tags["sweeps.error"]
    status = CliRunner().invoke(cli.app, ["status", str(path)], env={"COLUMNS": "200"})
    assert "failed" in status.output and "no chat template" in status.output


def test_model_is_loaded_once_per_worker_across_trials(ray_session, evaluate_sweep):
    """Tune reuses the actor, and its loaded model, for the next trial (trial groups off: one trial each)."""
    path = evaluate_sweep(
        name="reuse",
        share_prefill=False,
        grid={
            "method": [
                {"technique": "snapkv", "window_size": 8, "cache_size": [24, 32, 48, 64]},
            ]
        },
    )
    plan, summary, _ = run_file(path)
    assert summary.counts["done"] == 4
    store = SweepStore(plan.spec.sweep_dir)
    infos = [store.result(t.key)["info"] for t in plan.trials]
    assert sum(i["model_loaded_by_trial"] for i in infos) == 1
    assert len({i["worker"] for i in infos}) == 1 and max(i["model_loads_in_worker"] for i in infos) == 1


def test_export_writes_one_row_per_trial_with_params_and_metrics(ray_session, evaluate_sweep, tmp_path):
    path = evaluate_sweep(name="exp", grid={"method": [{"technique": "streamingllm", "cache_size": [32, 64]}]})
    plan, _, _ = run_file(path)
    # grow the plan without running it: the new cell must show up as a pending row
    sweeps.plan_file(path, [])
    grown, _ = sweeps.plan_file(path, ["grid.method[0].cache_size=[32, 64, 128]"])
    SweepStore(grown.spec.sweep_dir).save_plan(grown.records())
    runner = CliRunner()
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"exp.{fmt}"
        result = runner.invoke(
            cli.app,
            ["export", "exp", "--format", fmt, "-o", str(out), "--storage", str(plan.spec.storage_path)],
        )
        assert result.exit_code == 0, result.output
        table = (pacsv.read_csv(out) if fmt == "csv" else pq.read_table(out)).to_pylist()
        assert len(table) == 3
        rows = {r["cache_size"]: r for r in table}
        assert rows[32]["status"] == "done" and rows[32]["score"] is not None and rows[32]["kv_cache_mb"] > 0
        assert rows[128]["status"] == "pending" and rows[128]["score"] is None
        assert {"key", "status", "technique", "sink_tokens", "model", "empty_rate"} <= set(table[0])
        assert all(r["hf_token"] == "***" for r in table)


def test_relative_paths_resolve_from_where_the_sweep_is_launched(ray_session, sweep_file, tiny_model, monkeypatch):
    monkeypatch.chdir(tiny_model.parent)  # the sweep names its model as a path relative to here
    path = sweep_file(
        name="relative",
        experiment="relative",
        max_concurrent=1,
        fixed={"model": tiny_model.name, "task": "passkey", "context_length": 200, "samples": 1},
    )
    plan, summary, _ = run_file(path)
    record = SweepStore(plan.spec.sweep_dir).result(plan.trials[0].key)
    assert summary.counts["done"] == 1, record.get("error")
    assert record["params"]["model"] == tiny_model.name


def test_a_trial_failing_after_the_scheduler_stopped_it_stays_stopped(evaluate_sweep):
    """ASHA stops a trial; its own work then fails on the way down (a Ray Train run whose workers
    went with it). The stop is what happened: the failure must not overwrite it."""
    from sweeps.runner import driver_records, trial_config
    from sweeps.trial import TrialRecorder

    plan, _ = sweeps.plan_file(evaluate_sweep("raced"), [])
    plan.spec.scheduler = SchedulerSpec(metric="score", mode="max")
    store = SweepStore(plan.spec.sweep_dir)
    trial = plan.trials[0]
    recorder = TrialRecorder(trial_config(plan, trial, store))
    recorder.begin()
    _, stopped = driver_records(store, plan)
    stopped(trial.key, {"score": 0.25, "step": 3})
    kept = recorder.fail(RuntimeError("The actor died unexpectedly before finishing this task."))
    record = store.result(trial.key)
    assert record == kept and record["status"] == "stopped" and record["stopped_by"] == "asha on score"
    assert record["metrics"] == {"score": 0.25, "step": 3} and record["error"] is None
    assert store.is_done(trial.key)  # a relaunch does not run it again
    # a later attempt that fails is a failure again
    retry = TrialRecorder(trial_config(plan, trial, store))
    retry.begin()
    assert retry.fail(RuntimeError("boom"))["status"] == "failed"
