"""Output health: broken outputs show up as such — canary, rates, health tags, missing metrics."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from sweep_helpers import run_file
from typer.testing import CliRunner

from evaluators.health import health_tags
from evaluators.scoring import split_thinking
from evaluators.summary import task_metrics
from sweeps import cli
from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri


@pytest.mark.parametrize(
    "text, opened, answer, unfinished",
    [
        ("<think>add 2 and 2</think> 4", False, "4", False),
        ("add 2 and 2</think>\n\\boxed{4}", True, "\\boxed{4}", False),  # template opened <think>
        ("<think>let me think, and think again", False, "", True),
        ("still thinking when the budget ran out", True, "", True),
        ("plain answer 4", False, "plain answer 4", False),
    ],
)
def test_thinking_is_stripped_before_scoring(text, opened, answer, unfinished):
    split = split_thinking(text, opened)
    assert split.answer == answer and split.unfinished == unfinished
    assert split.present == ("think" in text or opened)


def test_health_tags_flag_mostly_broken_outputs():
    healthy = {"empty_rate": 0.2, "format_ok_rate": 0.9, "unfinished_thinking_rate": 0.0}
    assert health_tags(healthy, off_for_chat_model=False) == {}
    broken = {"empty_rate": 0.75, "format_ok_rate": 0.25, "unfinished_thinking_rate": 0.5}
    tags = health_tags(broken, off_for_chat_model=True)
    assert tags == {
        "health.chat_template": "off_for_chat_model",
        "health.empty_outputs": "75% of answers are empty",
        "health.format": "75% of answers lack the expected format",
        "health.unfinished_thinking": "50% of answers never closed </think>",
    }


def test_a_metric_no_sample_can_compute_is_missing_with_its_reason():
    rows = [
        {"scores": {"accuracy": 1.0}, "missing": {"abs_error": "no number in \\boxed{}"}},
        {"scores": {"accuracy": 0.0}, "missing": {"abs_error": "no number in \\boxed{}"}},
    ]
    metrics, missing = task_metrics(rows, ("accuracy", "abs_error"))
    assert metrics == {"accuracy": 0.5, "score": 0.5}  # not 0, not NaN; score is the primary metric
    assert missing == {"abs_error": "no number in \\boxed{}"}
    rows[1]["scores"]["abs_error"] = 3.0
    metrics, missing = task_metrics(rows, ("accuracy", "abs_error"))
    assert metrics["abs_error"] == 3.0 and missing == {}  # averaged over the samples that have it
    metrics, missing = task_metrics(rows, ("abs_error", "accuracy"))
    assert metrics["score"] == 3.0
    metrics, missing = task_metrics(
        [{"scores": {}, "missing": {"ndcg_at_10": "no relevant passage shown"}}], ("ndcg_at_10",)
    )
    assert missing == {"ndcg_at_10": "no relevant passage shown", "score": "no relevant passage shown"}


def test_a_model_that_answers_nothing_fails_the_canary_and_the_sweep_goes_on(
    ray_session, sweep_file, tiny_model, tiny_model_broken
):
    path = sweep_file(
        name="canary",
        experiment="canary",
        retries=0,
        max_concurrent=1,
        fixed={"task": "passkey", "context_length": 200, "samples": 1},
        grid={"model": [str(tiny_model_broken), str(tiny_model)]},
    )
    plan, summary, _ = run_file(path)
    assert summary.counts == {"done": 1, "failed": 1}
    store = SweepStore(plan.spec.sweep_dir)
    records = {t.config["model"]: store.result(t.key) for t in plan.trials}
    error = records[str(tiny_model_broken)]["error"]
    assert error["type"] == "HealthError" and "canary prompt" in error["message"]
    assert "empty string" in error["message"]
    assert records[str(tiny_model)]["status"] == "completed"


def test_a_reasoning_model_that_never_closes_think_is_flagged(ray_session, sweep_file, tiny_model_reasoning):
    path = sweep_file(
        name="think",
        experiment="think",
        max_concurrent=1,
        fixed={
            "model": str(tiny_model_reasoning),
            "task": "passkey",
            "context_length": 200,
            "samples": 2,
            "max_new_tokens": 6,
        },
    )
    plan, summary, _ = run_file(path)
    assert summary.counts == {"done": 1}
    store = SweepStore(plan.spec.sweep_dir)
    record = store.result(plan.trials[0].key)
    metrics, tags = record["metrics"], record["tags"]
    assert metrics["unfinished_thinking_rate"] == 1.0 and metrics["empty_rate"] == 1.0
    assert metrics["thinking_tokens"] > 0 and metrics["score"] == 0.0
    assert tags["health.unfinished_thinking"] == "100% of answers never closed </think>"
    assert tags["health.empty_outputs"] == "100% of answers are empty"
    status = CliRunner().invoke(cli.app, ["status", str(path)], env={"COLUMNS": "200"})
    assert "⚠ health.unfinished_thinking" in status.output and "⚠ health.empty_outputs" in status.output


def test_chat_template_off_for_a_chat_model_is_tagged_on_the_run(ray_session, sweep_file, tiny_model):
    path = sweep_file(
        name="notemplate",
        experiment="notemplate",
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
        grid={"chat_template": ["auto", "off"]},
    )
    plan, summary, _ = run_file(path)
    assert summary.counts == {"done": 2}
    client = MlflowClient(embedded_uri(plan.spec.storage_path))
    experiment = client.get_experiment_by_name("notemplate")
    runs = {
        r.data.params["chat_template"]: r
        for r in client.search_runs([experiment.experiment_id])
        if "chat_template" in r.data.params
    }
    assert runs["off"].data.tags["health.chat_template"] == "off_for_chat_model"
    assert "health.chat_template" not in runs["auto"].data.tags
    status = CliRunner().invoke(cli.app, ["status", str(path)], env={"COLUMNS": "200"})
    assert "⚠ health.chat_template" in status.output and "off_for_chat_model" in status.output


def test_weights_quantized_with_bitsandbytes_combine_with_any_technique(ray_session, sweep_file, tiny_model):
    path = sweep_file(
        name="quant",
        experiment="quant",
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
        grid={
            "method": [
                {"technique": ["baseline", "int8", "int4"]},
                {"technique": "snapkv", "window_size": 8, "cache_size": 32, "quantization": 4},
            ]
        },
    )
    plan, summary, _ = run_file(path)
    assert summary.counts == {"done": 4}
    store = SweepStore(plan.spec.sweep_dir)
    by_name = {plan.run_name(t): store.result(t.key) for t in plan.trials}
    memory = {name: r["metrics"]["model_memory_mb"] for name, r in by_name.items()}
    assert memory["int4"] < memory["int8"] < memory["baseline"]
    snap = by_name["snapkv · quantization=4 · w8 c32 avgpool"]
    assert snap["info"]["weights"].endswith("(cpu, 4-bit weights)")
    assert snap["metrics"]["model_memory_mb"] == memory["int4"]  # the same NF4 model, reused
    assert snap["metrics"]["kv_cache_tokens"] == 32
