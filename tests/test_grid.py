"""Grid expansion: axes, unions of sub-grids, nested axes, and the errors of malformed grids."""

from __future__ import annotations

import pytest

from sweeps.errors import SpecError
from sweeps.grid import expand
from sweeps.plan import make_plan
from sweeps.spec import parse


def params(cells):
    return [c.params for c in cells]


def test_every_list_is_an_axis_and_fixed_values_apply_to_all():
    cells = expand({"model": "m", "samples": 4}, {"task": ["a", "b"], "seed": [0, 1, 2]})
    assert len(cells) == 6
    assert {(p["task"], p["seed"]) for p in params(cells)} == {(t, s) for t in "ab" for s in range(3)}
    assert all(p["model"] == "m" and p["samples"] == 4 for p in params(cells))


def test_list_of_mappings_is_a_union_of_sub_grids_with_nested_axes():
    grid = {
        "task": ["niah", "json_kv"],
        "method": [
            {"technique": "baseline"},
            {
                "technique": "snapkv",
                "window_size": [32, 256],
                "cache_size": [1024, 2048],
                "pooling": ["avgpool", "maxpool"],
            },
            {"technique": "streamingllm", "cache_size": [1024, 2048]},
        ],
    }
    cells = params(expand({}, grid))
    # (1 + 8 + 2) methods x 2 tasks: technique parameters never multiply other techniques
    assert len(cells) == 22
    baseline = [c for c in cells if c["technique"] == "baseline"]
    assert len(baseline) == 2 and all(set(c) == {"task", "technique"} for c in baseline)
    snap = [c for c in cells if c["technique"] == "snapkv"]
    assert len(snap) == 16 and all({"window_size", "cache_size", "pooling"} <= set(c) for c in snap)
    assert "method" not in cells[0]  # the union's own key is only a label


def test_sources_point_at_the_value_in_the_file():
    cells = expand({"model": "m"}, {"method": [{"technique": "snapkv", "window_size": [32, 256]}]})
    assert cells[1].sources["window_size"] == "grid.method[0].window_size[1]"
    assert cells[1].sources["model"] == "fixed.model"


def test_grid_overrides_fixed_and_bare_mapping_is_a_sub_grid():
    cells = params(expand({"samples": 100}, {"method": {"technique": "baseline", "samples": [5, 6]}}))
    assert cells == [{"samples": 5, "technique": "baseline"}, {"samples": 6, "technique": "baseline"}]


def test_list_of_lists_sweeps_list_values_and_literal_keys_sweep_mappings():
    cells = params(expand({}, {"target_modules": [["q_proj", "v_proj"], ["qkv_proj"]]}))
    assert cells == [{"target_modules": ["q_proj", "v_proj"]}, {"target_modules": ["qkv_proj"]}]
    rewards = [{"boxed_match": 1.0}, {"boxed_match": 1.0, "format": 0.2}]
    cells = params(expand({}, {"rewards": rewards}, literal_keys={"rewards"}))
    assert cells == [{"rewards": rewards[0]}, {"rewards": rewards[1]}]


@pytest.mark.parametrize(
    "grid, path, words",
    [
        ({"task": []}, "grid.task", "empty list"),
        ({"method": [{"technique": "a"}, "b"]}, "grid.method", "mixes mappings"),
        ({"cache_size": [1, 2], "method": [{"cache_size": 3}]}, "grid.method[0].cache_size", "already set"),
    ],
)
def test_malformed_grids_name_the_place(grid, path, words):
    with pytest.raises(SpecError) as info:
        expand({}, grid)
    assert any(e.path == path and words in e.message for e in info.value.errors), info.value.render()


def evaluate_spec(tmp_path, grid, **fixed):
    return parse(
        {
            "name": "t",
            "workload": "evaluate",
            "storage": str(tmp_path),
            "fixed": {"model": "org/model", "task": "passkey", **fixed},
            "grid": grid,
        }
    )


def test_duplicate_trials_collapse_after_defaults_are_filled(tmp_path):
    # pooling avgpool is the default, so the first two sub-grids describe the same trials
    grid = {
        "method": [
            {"technique": "snapkv", "cache_size": [256, 512]},
            {"technique": "snapkv", "cache_size": [256, 512], "pooling": "avgpool"},
            {"technique": "snapkv", "cache_size": [256], "pooling": "maxpool"},
        ]
    }
    plan = make_plan(evaluate_spec(tmp_path, grid))
    assert len(plan.trials) == 3
    assert plan.duplicates == 2
    assert len({t.key for t in plan.trials}) == 3


def test_varying_parameters_are_those_that_differ(tmp_path):
    grid = {"method": [{"technique": "baseline"}, {"technique": "snapkv", "cache_size": [256, 512]}]}
    plan = make_plan(evaluate_spec(tmp_path, grid))
    assert "technique" in plan.varying and "cache_size" in plan.varying
    assert "model" not in plan.varying and "task" not in plan.varying
    names = [plan.run_name(t) for t in plan.trials]
    assert names == [
        "baseline",
        "snapkv c256 · w32 avgpool",
        "snapkv c512 · w32 avgpool",
    ]
