"""`sweeps report` and `sweeps.load`: the study's views, checked against the records they come from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from report_helpers import COSTS, MODEL, TRIALS, ScriptTags, front_keys, key_of, write_study

import sweeps


@pytest.fixture(scope="module")
def study_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_study(root)
    study = sweeps.load("study", storage=root)
    return study, study.report()


def test_fronts_match_an_independent_computation_and_leave_unhealthy_trials_off(study_report):
    study, files = study_report
    table = pd.read_csv(files.tables["fronts"])
    finished = [(p, m) for p, status, m, tags in TRIALS if status == "completed" and not tags]
    for task in ("passkey", "niah"):
        for cost, direction in COSTS.items():
            # configurations: the two seeds of snapkv w8 c64 maxpool are one point at their mean
            points: dict[str, list] = {}
            for params, metrics in finished:
                if params["task"] != task:
                    continue
                config = json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True)
                points.setdefault(config, []).append((key_of(params), metrics[cost], metrics["score"]))
            expected = front_keys(
                [
                    (
                        " ".join(k for k, _, _ in ms),
                        sum(c for _, c, _ in ms) / len(ms),
                        sum(s for _, _, s in ms) / len(ms),
                    )
                    for ms in points.values()
                ],
                direction == "min",
            )
            rows = table[(table["task"] == task) & (table["cost"] == cost)]
            assert len(rows) == len(points), (task, cost)
            assert set(rows.loc[rows["on_front"], "keys"]) == expected, (task, cost)
    sick = key_of(TRIALS[6][0])
    assert not table["keys"].str.contains(sick).any()
    trials = pd.read_csv(files.tables["trials"])
    assert trials.loc[trials["key"] == sick, "state"].item() == "unhealthy"


def test_seeds_are_aggregated_with_mean_std_and_count(study_report):
    _, files = study_report
    table = pd.read_csv(files.tables["fronts"])
    seeds = table[table["keys"].str.contains(" ") & (table["cost"] == "kv_cache_mb")].iloc[0]
    assert seeds["n"] == 2
    assert seeds["score"] == pytest.approx(0.6)
    assert seeds["score_std"] == pytest.approx(pd.Series([0.7, 0.5]).std())
    assert seeds["kv_cache_mb"] == pytest.approx(5.1)
    assert seeds["baseline"] == pytest.approx(0.9)


def test_completeness_matrix_shows_holes_failures_stops_and_pending(study_report):
    _, files = study_report
    table = pd.read_csv(files.tables["completeness"])
    assert list(table.columns[:3]) == ["model", "technique", "task"]
    assert len(table) == 1 * 3 * 2  # every combination, covered or not
    table = table.set_index(["task", "technique"])
    hole = table.loc[("niah", "streamingllm")]
    assert hole["planned"] == 0 and not hole["complete"]
    snapkv = table.loc[("passkey", "snapkv")]
    assert (snapkv["planned"], snapkv["done"], snapkv["failed"], snapkv["unhealthy"]) == (6, 4, 1, 1)
    assert table.loc[("passkey", "streamingllm"), "stopped"] == 1
    assert table.loc[("niah", "snapkv"), "pending"] == 1
    assert table.loc[("niah", "baseline"), "complete"]


def test_heatmap_cells_average_every_trial_of_the_cell(study_report):
    _, files = study_report
    cells = pd.read_csv(files.tables["heatmap"])
    passkey_max = cells[(cells["task"] == "passkey") & (cells["pooling"] == "maxpool")].set_index(
        ["window_size", "cache_size"]
    )
    assert passkey_max.loc[(8, 64), "score"] == pytest.approx(0.6)
    assert passkey_max.loc[(8, 64), "n"] == 2
    assert passkey_max.loc[(16, 64), "score"] == pytest.approx(0.6)
    assert (16, 128) not in passkey_max.index  # failed: no value, never a 0
    assert cells[cells["pooling"] == "avgpool"].empty  # its only trial is unhealthy


def test_best_per_budget_is_relative_to_the_baseline(study_report):
    _, files = study_report
    table = pd.read_csv(files.tables["budgets"])
    table = table[table["task"] == "passkey"].set_index(["technique", "budget"])
    assert table.loc[("snapkv", "64"), "best"] == pytest.approx(
        0.6
    )  # seeds' mean 0.6 ties w16; unhealthy 0.95 left off
    assert table.loc[("snapkv", "128"), "best"] == pytest.approx(0.85)
    assert table.loc[("snapkv", "128"), "vs_baseline"] == pytest.approx(0.85 - 0.9)
    assert table.loc[("snapkv", "128"), "ratio_to_baseline"] == pytest.approx(0.85 / 0.9)
    assert table.loc[("baseline", "full"), "best"] == pytest.approx(0.9)
    assert ("streamingllm", "128") not in table.index  # stopped early: its metrics are partial


def test_report_files_are_self_contained_and_print_ready(study_report):
    study, files = study_report
    assert files.folder == study.store.root / "report"
    text = files.page.read_text()
    scripts = ScriptTags()
    scripts.feed(text)
    assert scripts.sources == [] and scripts.count >= 1  # plotly.js inlined: the page opens offline
    assert text.count("Plotly.newPlot") >= 3  # two fronts and the heatmaps
    pngs = [p for p in files.figures if p.suffix == ".png"]
    assert {p.stem for p in pngs} >= {"completeness", "front-tiny-llama-niah", "front-tiny-llama-passkey"}
    for png in pngs:
        dpi = Image.open(png).info["dpi"]
        assert round(dpi[0]) == 300 and round(dpi[1]) == 300
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_notebook_api_gives_plan_statuses_and_rows(study_report):
    study, _ = study_report
    assert len(study.plan) == len(TRIALS)
    statuses = study.statuses
    assert sorted(statuses.values()).count("done") == 9
    assert statuses[key_of(TRIALS[5][0])] == "failed"
    assert statuses[key_of(TRIALS[8][0])] == "stopped"
    assert statuses[key_of(TRIALS[11][0])] == "pending"
    frame = study.to_pandas()
    assert len(frame) == len(TRIALS) and {"key", "status", "score", "technique"} <= set(frame.columns)


def test_import_sweeps_stays_cheap():
    heavy = "('pandas', 'plotly', 'matplotlib', 'ray', 'mlflow', 'torch')"
    code = f"import sys, sweeps; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert sweeps.__all__ == ["Study", "load", "plan_file"]


def test_cli_rejects_a_bad_axis_before_writing_anything(tmp_path):
    write_study(tmp_path)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps.cli",
            "report",
            "study",
            "--storage",
            str(tmp_path),
            "-o",
            str(out),
            "--x",
            "windw_size",
            "--facet",
            "nope",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert "--x: 'windw_size' is not accepted" in result.stderr and "did you mean 'window_size'?" in result.stderr
    assert "--facet: 'nope'" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "report", "study", "--storage", str(tmp_path), "-o", str(taken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and f"--output: {taken} is a file" in result.stderr, result.stderr


def test_cli_draws_requested_axes_and_unhealthy_trials_when_asked(tmp_path):
    write_study(tmp_path)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps.cli",
            "report",
            "study",
            "--storage",
            str(tmp_path),
            "-o",
            str(out),
            "--x",
            "pooling",
            "--y",
            "window_size",
            "--facet",
            "cache_size",
            "--include-unhealthy",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert str(out / "report.html") in result.stdout.replace("\n", "")
    cells = pd.read_csv(out / "heatmap.csv")
    assert list(cells.columns[:3]) == ["cache_size", "pooling", "window_size"]
    assert set(cells["cache_size"]) == {64, 128}
    assert cells.set_index(["cache_size", "pooling", "window_size"]).loc[(64, "avgpool", 8), "score"] == 0.95
    table = pd.read_csv(out / "fronts.csv")
    sick = table[table["keys"] == key_of(TRIALS[6][0])]
    assert len(sick) == len(COSTS) and sick["on_front"].all()  # it dominates every other configuration


def _lora(r: int) -> dict:
    return {"model": MODEL, "lora_r": r, "learning_rate": 0.0002, "seed": 0}


def test_training_sweep_curves_join_launches_and_mark_stops(tmp_path):
    trials = [
        (_lora(8), "completed", {"eval_accuracy": 0.5, "eval_loss": 1.1, "step": 3.0}, {}),
        (_lora(16), "stopped", {"eval_loss": 1.9, "step": 2.0}, {}),
        (_lora(32), "failed", {}, {}),
    ]
    store = write_study(tmp_path, "lora", "sft", trials)
    done, stopped = (key_of(t[0], "sft") for t in trials[:2])
    lines = {
        ("launch-a", done): [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}],
        ("launch-b", done): [{"step": 2, "loss": 1.4}, {"step": 3, "loss": 1.2, "eval_accuracy": 0.5}],
        ("launch-a", stopped): [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.2, "eval_loss": 1.9}],
    }
    for (launch, key), results in lines.items():
        path = store.root / "_tune" / launch / key / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in results) + '{"step": 4, "lo')  # a line cut off by a kill
    files = sweeps.load("lora", storage=tmp_path).report()
    curves = pd.read_csv(files.tables["curves"])
    loss = curves[(curves["key"] == done) & (curves["metric"] == "loss")]
    assert list(zip(loss["step"], loss["value"], strict=True)) == [(1, 2.0), (2, 1.4), (3, 1.2)]  # launch b wins step 2
    assert curves[(curves["key"] == done) & (curves["metric"] == "eval_loss")]["value"].tolist() == [1.7]
    assert set(curves.loc[curves["key"] == stopped, "state"]) == {"stopped"}
    assert set(curves["metric"]) == {"loss", "eval_loss"}
    stopped_name = next(
        r["name"] for r in json.loads((store.root / "plan.json").read_text())["trials"] if r["key"] == stopped
    )
    assert f"{stopped_name} (stopped)" in files.page.read_text()  # the legend says it; its curve ends in a cross
    assert {p.name for p in files.figures} >= {"curves.png", "curves.pdf", "completeness.png"}
    # final metrics per LoRA setting, as each trial's result holds them (a failed one has none)
    final = pd.read_csv(files.tables["configurations"]).set_index("lora_r")
    assert final.loc[8, ["eval_accuracy", "eval_loss"]].tolist() == [0.5, 1.1]
    assert final.loc[16, "eval_loss"] == 1.9 and pd.isna(final.loc[16, "eval_accuracy"])
    assert final.loc[32, ["eval_accuracy", "eval_loss"]].isna().all()
    assert "<h2>Final metrics per setting</h2>" in files.page.read_text()
    completeness = pd.read_csv(files.tables["completeness"])
    assert list(completeness.columns[:2]) == ["model", "lora_r"]  # one model: the LoRA axis shows the holes
    assert completeness[["done", "stopped", "failed"]].sum().tolist() == [1, 1, 1]


def test_final_metrics_never_average_a_stopped_seed_with_a_finished_one(tmp_path):
    trials = [
        (_lora(8), "completed", {"eval_loss": 1.1}, {}),
        ({**_lora(8), "seed": 1}, "completed", {"eval_loss": 1.3}, {}),
        ({**_lora(8), "seed": 2}, "stopped", {"eval_loss": 2.5}, {}),  # ASHA cut it short: a worse, earlier loss
        (_lora(16), "stopped", {"eval_loss": 1.9}, {}),
    ]
    write_study(tmp_path, "lora", "sft", trials)
    files = sweeps.load("lora", storage=tmp_path).report()
    table = pd.read_csv(files.tables["configurations"])
    assert table[["lora_r", "state", "n"]].values.tolist() == [
        [8, "done", 2],
        [8, "stopped: asha", 1],
        [16, "stopped: asha", 1],
    ]
    assert table["eval_loss"].tolist() == pytest.approx([1.2, 2.5, 1.9])
    final = files.page.read_text().split("<h2>Final metrics per setting</h2>")[1]
    assert final.count("<td>stopped: asha</td>") == 2 and final.count("<td>done</td>") == 1


def test_report_of_a_real_sweep_matches_its_results(ray_session, sweep_file, tiny_model):
    from sweep_helpers import run_file

    path = sweep_file(
        name="real",
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 2},
        grid={
            "method": [
                {"technique": "baseline"},
                {"technique": "snapkv", "window_size": 8, "cache_size": [32, 64], "pooling": "maxpool"},
                {"technique": "streamingllm", "cache_size": 32},
            ]
        },
    )
    plan, summary, _ = run_file(path)
    storage = Path(plan.spec.storage)
    study = sweeps.load("real", storage=storage)
    assert set(study.statuses.values()) == {"done"}
    files = study.report()
    results = {k: study.store.result(k) for k in study.statuses}
    table = pd.read_csv(files.tables["fronts"])
    for cost, direction in COSTS.items():
        rows = table[table["cost"] == cost].set_index("keys")
        assert set(rows.index) == set(results)
        for key, result in results.items():
            assert rows.loc[key, "score"] == pytest.approx(result["metrics"]["score"])
            assert rows.loc[key, "cost_value"] == pytest.approx(result["metrics"][cost])
        points = [(k, r["metrics"][cost], r["metrics"]["score"]) for k, r in results.items()]
        # ties (equal score and cost) are all on the front; the sweep keeps the first, so compare scores
        expected = front_keys(points, direction == "min")
        assert expected <= set(rows.index[rows["on_front"]])
    cells = pd.read_csv(files.tables["heatmap"])
    assert sorted(cells["cache_size"]) == [32, 64] and set(cells["window_size"]) == {8}
    completeness = pd.read_csv(files.tables["completeness"])
    assert completeness["done"].sum() == 4 and completeness["complete"].all()
    page = files.page.read_text()
    for row in study.plan:
        assert row["key"] in page and row["name"] in page  # each point hovers with its name and key


def test_every_metric_declares_its_direction_where_it_is_defined():
    from sweeps import registry

    evaluate = registry.get("evaluate").metric_directions
    lower = ("abs_error", "violation_rate", "empty_rate", "kv_cache_mb", "peak_memory_mb", "seconds_per_sample")
    assert {m: evaluate[m] for m in lower} == dict.fromkeys(lower, "min")
    higher = ("score", "accuracy", "f1", "ndcg_at_10", "format_ok_rate", "prefill_tokens_per_s", "decode_tokens_per_s")
    assert {m: evaluate[m] for m in higher} == dict.fromkeys(higher, "max")
    sft = registry.get("sft").metric_directions
    assert (sft["loss"], sft["eval_loss"], sft["eval_empty_rate"], sft["eval_accuracy"]) == ("min", "min", "min", "max")
    assert registry.get("grpo").metric_directions["rewards/boxed_match/mean"] == "max"


def test_best_follows_the_main_metrics_direction(study_report):
    from sweeps.study.budgets import best_per_budget

    study, _ = study_report
    records = study.records()
    records.main = "seconds_per_sample"  # lower is better: the fastest configuration per budget wins
    table = best_per_budget(records).set_index(["task", "technique", "budget"])
    assert table.loc[("passkey", "snapkv", 64), "best"] == pytest.approx(1.8)
    assert table.loc[("passkey", "snapkv", 64), "vs_baseline"] == pytest.approx(1.8 - 3.0)


def test_best_per_model_and_task_follows_the_main_metric_and_a_tie_goes_to_less_memory(study_report):
    from sweeps.study.best import best_per_group

    study, _ = study_report
    records = study.records()
    best = best_per_group(records).set_index("task")
    assert best.loc["passkey", "keys"] == key_of(TRIALS[0][0]) and best.loc["passkey", "score"] == 0.9  # baseline
    assert best.loc["niah", "keys"] == key_of(TRIALS[9][0])  # the unhealthy 0.95 is left out
    tie = records.frame["key"] == key_of(TRIALS[4][0])  # snapkv w8 c128: 10 MB against the baseline's 40
    records.frame.loc[tie, "score"] = 0.9
    assert best_per_group(records).set_index("task").loc["passkey", "keys"] == key_of(TRIALS[4][0])
    records.main = "seconds_per_sample"  # lower is better: the fastest healthy configuration
    assert best_per_group(records).set_index("task").loc["passkey", "keys"] == key_of(TRIALS[7][0])
