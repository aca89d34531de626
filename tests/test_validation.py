"""Validation: every error names the field path, the bad value, what is accepted, and a guess."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from sweeps.errors import SpecError, suggest
from sweeps.plan import make_plan
from sweeps.spec import apply_override, parse


def errors_of(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        make_plan(parse(raw))
    return [e.render() for e in info.value.errors]


def base(**fixed) -> dict:
    return {"name": "v", "workload": "evaluate", "fixed": {"model": "org/model", "task": "passkey", **fixed}}


@pytest.mark.parametrize(
    "bad, choices, expected",
    [
        ("int4", [4, 8, None], 4),
        ("maxpooling", ["avgpool", "maxpool"], "maxpool"),
        ("snapvk", ["snapkv", "streamingllm", "baseline"], "snapkv"),
        ("cach_size", ["cache_size", "window_size"], "cache_size"),
        ("zzz", ["avgpool", "maxpool"], None),
    ],
)
def test_suggestions(bad, choices, expected):
    assert suggest(bad, choices) == expected


def test_misspelt_top_level_key():
    with pytest.raises(SpecError) as info:
        parse({"name": "v", "workload": "evaluate", "max_concurent": 2})
    text = info.value.render()
    assert "max_concurent: unknown key 'max_concurent'" in text
    assert "did you mean 'max_concurrent'?" in text


def test_misspelt_value_in_a_sub_grid_names_its_path():
    raw = base()
    raw["grid"] = {"method": [{"technique": "snapkv", "pooling": ["avgpool", "maxpooling"]}]}
    (message,) = errors_of(raw)
    assert message.startswith("grid.method[0].pooling[1]: 'maxpooling' is not accepted")
    assert "accepted: 'avgpool', 'maxpool'" in message and "did you mean 'maxpool'?" in message


def test_misspelt_parameter_and_technique():
    raw = base()
    raw["grid"] = {"method": [{"technique": "snapkv", "cach_size": [128]}, {"technique": "snapvk"}]}
    messages = errors_of(raw)
    assert any(
        m.startswith("grid.method[0].cach_size[0]: unknown key 'cach_size'") and "did you mean 'cache_size'?" in m
        for m in messages
    ), messages
    assert any(
        m.startswith("grid.method[1].technique: 'snapvk' is not accepted") and "did you mean 'snapkv'?" in m
        for m in messages
    ), messages


def test_type_and_cross_field_errors():
    raw = base(samples="many")
    raw["grid"] = {"method": [{"technique": "snapkv", "window_size": 64, "cache_size": 32}]}
    messages = errors_of(raw)
    assert any(m.startswith("fixed.samples: 'many' is not an integer") for m in messages), messages
    assert any(m.startswith("grid.method[0].cache_size: must be larger than window_size (64)") for m in messages)


def test_missing_required_and_bad_model_reference(tmp_path):
    messages = errors_of({"name": "v", "workload": "evaluate", "fixed": {"task": "passkey"}})
    assert any("missing required parameter 'model'" in m for m in messages)
    messages = errors_of(base(model=str(tmp_path / "nowhere")))
    assert any(m.startswith("fixed.model:") and "neither an existing folder" in m for m in messages)


def test_unknown_workload_suggests():
    with pytest.raises(SpecError) as info:
        make_plan(parse({"name": "v", "workload": "evaluat"}))
    assert "did you mean 'evaluate'?" in info.value.render()


def test_overrides_reach_any_key():
    raw = {
        "name": "v",
        "fixed": {"samples": 10},
        "grid": {"method": [{"technique": "snapkv", "cache_size": [1]}]},
    }
    apply_override(raw, "fixed.samples=4")
    apply_override(raw, "grid.method[0].cache_size=[128, 256]")
    apply_override(raw, "resources.gpu=1")
    assert raw["fixed"]["samples"] == 4
    assert raw["grid"]["method"][0]["cache_size"] == [128, 256]
    assert raw["resources"] == {"gpu": 1}
    with pytest.raises(SpecError, match="grid.method has no item 3"):
        apply_override(raw, "grid.method[3].cache_size=1")
    with pytest.raises(SpecError, match="has no '='"):
        apply_override(raw, "fixed.samples")


def test_cli_exits_2_before_starting_ray(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nworkload: evaluate\n"
        f"storage: {tmp_path / 'runs'}\n"
        "fixed: {model: org/model, task: passkey, quantization: int4}\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "launch", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    # DESIGN.md's own example: a typo that used to fail jobs late fails here, with the fix
    assert "fixed.quantization: 'int4' is not accepted; accepted: 4, 8, null (did you mean 4?)" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written: no storage, no MLflow, no Ray
    assert "ray" not in proc.stdout.lower()
    assert time.monotonic() - start < 60


def test_list_shows_what_is_registered_with_parameters():
    from typer.testing import CliRunner

    from evaluators.kvcache import TECHNIQUES
    from sweeps import cli

    runner = CliRunner(env={"COLUMNS": "250"})
    techniques = runner.invoke(cli.app, ["list", "techniques"])
    assert techniques.exit_code == 0
    assert all(name in techniques.output for name in TECHNIQUES)
    # each parameter: name, type, default, then its help
    assert re.search(r"window_size +int +32 +the observation window", techniques.output)
    assert re.search(r"sparsity +float +0\.5 +fraction of the KV heads", techniques.output)
    workloads = runner.invoke(cli.app, ["list", "workloads"])
    assert "evaluate" in workloads.output and re.search(r"\bmodel +str +required +Hugging Face", workloads.output)
    assert "passkey" in runner.invoke(cli.app, ["list", "tasks"]).output
    wrong = runner.invoke(cli.app, ["list", "techniqes"])
    assert isinstance(wrong.exception, SpecError) and "did you mean 'techniques'?" in wrong.exception.render()
