"""What MLflow holds of a launched sweep, read back from a real store: one meaning per step,
names that lead with what varies, memory axes every run shares, no unset parameters, readable
times, trouble in the run name, and a parent run that answers the sweep."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sweep_helpers import run_file

from sweeps.plan import make_plan
from sweeps.spec import parse
from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_back(plan) -> tuple[MlflowClient, object, dict, object]:
    """The client, the experiment, the trials' runs by key and the parent run."""
    client = MlflowClient(embedded_uri(plan.spec.storage_path))
    experiment = client.get_experiment_by_name(plan.spec.experiment_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    kids = {r.data.tags["sweeps.trial_key"]: r for r in runs if r is not parent}
    return client, experiment, kids, parent


def points(client: MlflowClient, run, metric: str) -> list[tuple[int, float]]:
    return sorted((p.step, p.value) for p in client.get_metric_history(run.info.run_id, metric))


def test_final_metrics_are_logged_once_and_progress_at_its_own_steps(launched_sweep):
    _, plan, _, _ = launched_sweep
    client, _, kids, _ = read_back(plan)
    store = SweepStore(plan.spec.sweep_dir)
    for trial in plan.trials:
        run, metrics = kids[trial.key], store.result(trial.key)["metrics"]
        for metric, value in metrics.items():
            if metric != "samples_done":
                assert points(client, run, metric) == [(0, pytest.approx(value))], metric
        # progress: one point per sample evaluated, at its own step
        assert points(client, run, "samples_done") == [(1, 1.0), (2, 2.0)]


def test_a_result_mirrored_again_adds_no_point(launched_sweep):
    path, plan, _, _ = launched_sweep
    client, _, kids, _ = read_back(plan)
    run = kids[plan.trials[1].key]
    # as if the launcher died inside the mirroring of this result: run still open, result on disk
    client.update_run(run.info.run_id, status="RUNNING")
    _, again, out = run_file(path)
    assert again.ran == 0 and "mirroring 1 result(s)" in out
    client, _, kids, _ = read_back(plan)
    assert kids[plan.trials[1].key].info.status == "FINISHED"
    score = SweepStore(plan.spec.sweep_dir).result(plan.trials[1].key)["metrics"]["score"]
    assert points(client, kids[plan.trials[1].key], "score") == [(0, pytest.approx(score))]


def test_run_names_lead_with_what_varies_and_leave_out_what_all_share(launched_sweep):
    _, plan, _, _ = launched_sweep
    _, _, kids, _ = read_back(plan)
    names = {kids[t.key].info.run_name for t in plan.trials}
    assert names == {"baseline", "snapkv c32 · w8 avgpool", "snapkv c64 · w8 avgpool", "streamingllm c32 · s4"}


def planned_names(tmp_path: Path, method: list[dict], **fixed) -> list[str]:
    raw = {
        "name": "names",
        "workload": "evaluate",
        "storage": str(tmp_path),
        "fixed": {"model": "smollm2-135m-instruct", "task": "passkey", **fixed},
        "grid": {"method": method},
    }
    plan = make_plan(parse(raw))
    return [plan.run_name(t) for t in plan.trials]


def test_a_name_starts_with_the_one_setting_that_varies(tmp_path):
    method = [{"technique": "snapkv", "window_size": 32, "cache_size": [256, 512], "pooling": "maxpool"}]
    assert planned_names(tmp_path, method) == ["c256 · snapkv w32 maxpool", "c512 · snapkv w32 maxpool"]
    tasks = planned_names(tmp_path, [{"technique": "baseline", "task": ["passkey", "niah"]}], context_length=1024)
    assert tasks == ["passkey · baseline", "niah single · baseline"]
    assert planned_names(tmp_path, [{"technique": "baseline"}]) == ["baseline · passkey"]  # a single trial


def test_every_run_carries_the_memory_it_kept_and_its_budget(launched_sweep):
    _, plan, _, _ = launched_sweep
    _, _, kids, _ = read_back(plan)
    for trial in plan.trials:
        metrics = kids[trial.key].data.metrics
        kept, budget = metrics["kv_cache_tokens"], metrics["kv_budget_tokens"]
        if trial.config["technique"] == "baseline":  # the whole prompt: its budget is the prompt's length
            assert kept == budget == metrics["prompt_tokens"] > 64
        else:
            assert budget == trial.config["cache_size"] and kept <= budget


def test_unset_parameters_are_not_logged_and_times_are_readable(launched_sweep):
    _, plan, _, _ = launched_sweep
    _, _, kids, _ = read_back(plan)
    store = SweepStore(plan.spec.sweep_dir)
    for trial in plan.trials:
        run = kids[trial.key]
        assert "None" not in run.data.params.values()
        assert {"quantization", "kv_bits", "max_new_tokens", "hf_token"}.isdisjoint(run.data.params)
        synced = run.data.tags["sweeps.synced"]
        assert ISO_UTC.match(synced), synced
        finished = datetime.fromtimestamp(store.result(trial.key)["finished_at"], timezone.utc)
        assert synced == finished.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_the_parent_run_answers_the_sweep(launched_sweep, tmp_path):
    _, plan, launched, _ = launched_sweep
    client, experiment, kids, parent = read_back(plan)
    store = SweepStore(plan.spec.sweep_dir)
    scores = {t.key: store.result(t.key)["metrics"]["score"] for t in plan.trials}
    best = max(scores.values())
    note = parent.data.tags["mlflow.note.content"]
    assert "## How to read this sweep" in note and "4 done" in note
    assert "## Best per model and task by score (higher is better)" in note
    assert "## On the Pareto front of score against kv_cache_mb" in note
    assert parent.data.metrics["trials_done"] == 4 and parent.data.metrics["trials_total"] == 4
    summary = json.loads(Path(client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))).read_text())
    (row,) = summary["best"]
    assert row["score"] == pytest.approx(best) and scores[row["keys"].split()[0]] == pytest.approx(best)
    assert row["task"] == "passkey" and row["trial"] in note
    others = dict.fromkeys(["unhealthy", "stopped", "failed", "running", "pending"], 0)
    assert summary["counts"] == {"total": 4, "done": 4, **others}
    assert {f["keys"] for f in summary["front"]} <= set(scores)
    assert summary["missing"] == []
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/completeness.png"} <= artifacts
    assert any(re.match(r"report/front-.*passkey\.png$", a) for a in artifacts)
    assert {"report/trials.csv", "report/fronts.csv", "report/completeness.csv"} <= artifacts
    assert not any(a.endswith(".pdf") for a in artifacts)
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep.yaml", "summary.json", "report"} <= top
    # the experiment opens as model training, in the sweep's saved view of its runs
    tags = client.get_experiment(experiment.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(json.loads(tags["mlflow.sharedViewState.sweep-readable"])["state"])
    assert view["orderByKey"] == "metrics.`score`" and view["orderByAsc"] is False
    assert {"params.`technique`", "params.`cache_size`", "metrics.`score`", "metrics.`kv_budget_tokens`"} <= set(
        view["selectedColumns"]
    )
    assert view["runsHiddenMode"] == "SHOW_ALL"
    # the link the launch prints opens that view, in model-training mode
    runs = f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert launched.runs_url.endswith(f"{runs}&viewStateShareKey=sweep-readable"), launched.runs_url


def test_sweeps_report_refreshes_the_parent_run(launched_sweep):
    _, plan, _, _ = launched_sweep
    client, _, _, parent = read_back(plan)
    client.delete_tag(parent.info.run_id, "mlflow.note.content")
    result = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "report", "readable", "--storage", str(plan.spec.storage_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stderr
    assert "MLflow: the sweep's run carries it" in result.stdout
    _, _, _, parent = read_back(plan)
    assert "## How to read this sweep" in parent.data.tags["mlflow.note.content"]
    assert f"/runs/{parent.info.run_id}?workflowType=machine_learning" in result.stdout.replace("\n", "")


def test_failed_and_unhealthy_trials_show_in_their_run_names(
    ray_session, sweep_file, tiny_model_plain, tiny_model_reasoning
):
    path = sweep_file(
        name="troubled",
        experiment="troubled",
        retries=0,
        max_concurrent=1,
        fixed={"task": "passkey", "context_length": 200, "samples": 1},
        grid={
            "method": [
                {"technique": "baseline", "model": str(tiny_model_plain), "chat_template": "on"},  # no template: fails
                # never closes </think> in 6 tokens: no answer at all
                {"technique": "baseline", "model": str(tiny_model_reasoning), "max_new_tokens": 6},
            ]
        },
    )
    plan, summary, out = run_file(path)
    assert summary.failed == 1 and summary.counts["done"] == 1, out
    client, _, kids, parent = read_back(plan)
    failed, sick = (kids[t.key] for t in plan.trials)
    assert failed.info.run_name == f"{plan.run_name(plan.trials[0])} ✗ failed"
    assert failed.data.tags["sweeps.status"] == "failed" and failed.info.status == "FAILED"
    assert sick.info.run_name == f"{plan.run_name(plan.trials[1])} ⚠ empty outputs +2"  # format, unfinished thinking
    assert sick.data.tags["sweeps.status"] == "unhealthy"
    note = parent.data.tags["mlflow.note.content"]
    assert "1 done (1 unhealthy), 1 failed" in note and "## Missing cells" in note and "0/1 done · 1 failed" in note


def test_a_summary_that_cannot_be_written_does_not_fail_the_launch(ray_session, sweep_file, tiny_model):
    path = sweep_file(
        name="unsummarized",
        experiment="unsummarized",
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
    )
    folder = path.parent / "runs" / "unsummarized"  # where the sweep_file fixture puts it
    folder.mkdir(parents=True)
    (folder / "report").write_text("a file where the report folder goes")
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 1 and summary.failed == 0
    assert out.count("The sweep's summary for MLflow could not be built") == 1, out
    assert "viewStateShareKey" not in summary.runs_url and "workflowType=machine_learning" in summary.runs_url


def test_a_large_sweeps_description_fits_what_mlflow_keeps_of_a_tag():
    from sweeps.mlflow_view import RunsView
    from sweeps.summary_note import MAX_NOTE, description
    from sweeps.summary_run import SweepSummary

    models = [f"org/model-{i}" for i in range(400)]
    missing = [{"model": m, "task": "niah", "state": "0/4 done · 4 pending"} for m in models]
    best = [{"model": m, "task": "niah", "trial": "c2048 · snapkv w32 maxpool", "score": 0.5} for m in models[:40]]
    summary = SweepSummary(
        sweep="helmet",
        workload="evaluate",
        main="score",
        lower_is_better=False,
        counts={"total": 1600, "pending": 1600},
        best=best,
        front_cost=None,
        front=[],
        missing_axes=["model", "task"],
        missing=missing,
        view=RunsView("helmet", ["cache_size"], ["score"], "score", False),
    )
    text = description(summary)
    assert len(text) <= MAX_NOTE and text.startswith("**evaluate sweep helmet: 1600 pending — 1600 in all.**")
    assert "… and 20 more (see the report's CSV tables)" in text  # best: 40 rows, 20 shown
    assert "… and 380 more" in text or text.endswith("(cut: see the report's CSV tables)\n")
