"""The sft and grpo workloads without Ray: validation, data errors, LoRA targets, templates, rewards, QLoRA."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Phi3Config, Qwen2Config

from sweeps.errors import SpecError
from sweeps.plan import make_plan
from sweeps.spec import parse
from trainers.arithmetic import write_dataset, write_jsonl
from trainers.checkpoints import MARKER, discard_incomplete, latest_checkpoint
from trainers.data import Example, load_examples, split
from trainers.failures import WorkerDiedError, explain
from trainers.lora import TargetModuleError, linear_layer_names, resolve_targets
from trainers.placement import WORKER_GROUPS, record_worker_group, release_worker_groups
from trainers.rewards import build_rewards
from trainers.run import Worker, run
from trainers.sft import SFTParams
from trainers.templates import CHAT_EXAMPLE, ChatTemplateError, Renderer, write_example
from trainers.trainable import prepare


@pytest.fixture
def sft_data(tmp_path) -> Path:
    return write_dataset(tmp_path / "sft.jsonl", count=40, kind="sft")


@pytest.fixture
def grpo_data(tmp_path) -> Path:
    return write_dataset(tmp_path / "grpo.jsonl", count=40, kind="grpo")


def sweep(workload: str, **fixed) -> dict:
    return {"name": "t", "workload": workload, "storage": "/nonexistent/never-created", "fixed": fixed}


def plan_errors(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        make_plan(parse(raw))
    return [e.render() for e in info.value.errors]


# -- data ------------------------------------------------------------------------------------------
def test_generator_is_deterministic_and_rows_are_valid(tmp_path):
    a = write_dataset(tmp_path / "a.jsonl", count=30, seed=3, kind="sft")
    b = write_dataset(tmp_path / "b.jsonl", count=30, seed=3, kind="sft")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != write_dataset(tmp_path / "c.jsonl", count=30, seed=4, kind="sft").read_bytes()
    examples = load_examples(a, "sft")
    assert len(examples) == 30 and examples[0].completion == f"\\boxed{{{examples[0].answer}}}"
    grpo = load_examples(write_dataset(tmp_path / "g.jsonl", count=5, kind="grpo"), "grpo", ("answer",))
    assert all("\\boxed{}" in e.prompt[-1]["content"] and e.completion is None for e in grpo)
    shown = load_examples(write_dataset(tmp_path / "s.jsonl", count=3, kind="grpo", system="Hi.", shots=1), "grpo")
    assert [m["role"] for m in shown[0].prompt] == ["system", "user", "assistant", "user"]
    a, op, b = shown[0].prompt[1]["content"].split("?")[0].removeprefix("What is ").split()
    value = int(a) + int(b) if op == "+" else int(a) - int(b)
    assert shown[0].prompt[2]["content"] == f"\\boxed{{{value}}}"  # the shown answer is right
    train, held_out = split(examples, 0.2, seed=0)
    assert len(held_out) == 6 and len(train) == 24 and not {e.line for e in train} & {e.line for e in held_out}
    assert split(examples, 0.2, seed=0) == (train, held_out)


def test_bad_rows_are_reported_with_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"prompt": "What is 1 + 1?", "completion": "\\boxed{2}"},
        {"prompt": "What is 2 + 2?"},
        "not json at all",
        {"messages": [{"role": "user", "content": "hi"}]},
        {"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "completion": "x"},
        {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
    ]
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    messages = plan_errors(sweep("sft", model="org/model", dataset=str(path)))
    (text,) = messages
    assert text.startswith("fixed.dataset: 5 bad row(s) in the dataset:")
    assert f"{path}:2: missing field 'completion'" in text
    assert f"{path}:3: not valid JSON" in text
    assert f"{path}:4: field 'messages' must end with an assistant message" in text
    assert f"{path}:5: field 'prompt' ends with an assistant message" in text
    assert f"{path}:6: field 'messages'[0].role 'robot' is not one of system, user, assistant" in text
    assert f"{path}:1:" not in text

    grpo = tmp_path / "grpo.jsonl"
    write_jsonl(grpo, [{"prompt": "What is 1 + 1?", "answer": "2"}, {"prompt": "What is 3 + 3?"}])
    (text,) = plan_errors(sweep("grpo", model="org/model", dataset=str(grpo)))
    assert f"{grpo}:2: missing field 'answer' (needed by the rewards)" in text
    # a reward that needs no gold makes the same file valid
    make_plan(parse(sweep("grpo", model="org/model", dataset=str(grpo), rewards={"format": 1.0})))

    jsonl = tmp_path / "json.jsonl"
    write_jsonl(
        jsonl,
        [
            {"prompt": "Plan the jobs.", "constraints": [{"path": "jobs[*].load", "max": 8}], "schema": {}},
            {"prompt": "Plan the jobs.", "constraints": [{"path": "jobs[*].load"}]},
            {"prompt": "Plan the jobs.", "constraints": [], "schema": {"type": "thing"}},
        ],
    )
    rewards = {"json_valid": 1.0, "json_constraints": 1.0}
    (text,) = plan_errors(sweep("grpo", model="org/model", dataset=str(jsonl), answer_format="json", rewards=rewards))
    assert f"{jsonl}:2: field 'constraints'[0]: constraint {{'path': 'jobs[*].load'}} needs 'min' or 'max'" in text
    assert f"{jsonl}:3: field 'schema' is not a valid JSON schema" in text
    assert f"{jsonl}:1:" not in text


def test_bad_input_exits_2_without_starting_anything(tmp_path):
    storage = tmp_path / "runs"
    path = tmp_path / "bad.yaml"
    raw = sweep("sft", model="org/model", dataset=str(tmp_path / "missing.jsonl"))
    raw["storage"] = str(storage)
    path.write_text(json.dumps(raw))
    result = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "launch", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"fixed.dataset: {tmp_path / 'missing.jsonl'}: no such dataset file" in result.stderr
    assert not storage.exists()  # no sweep folder, no MLflow store, no Ray


def test_parameters_are_validated_across_fields(sft_data, grpo_data):
    messages = plan_errors(
        sweep(
            "sft",
            model="org/model",
            dataset=str(sft_data),
            zero_stage=4,
            quantization="int4",
            offload=True,
            max_steps=10,
            epochs=1,
            eval_fraction=1.5,
        )
    )
    text = "\n".join(messages)
    assert "fixed.zero_stage: 4 is not accepted; accepted: 0, 1, 2, 3" in text
    assert "fixed.quantization: 'int4' is not accepted; accepted: 4, null (did you mean 4?)" in text
    types_ok = plan_errors(
        sweep("sft", model="org/model", dataset=str(sft_data), max_steps=10, epochs=1, eval_fraction=1.5)
    )
    text = "\n".join(types_ok)
    assert "fixed.epochs: give max_steps or epochs, not both" in text
    assert "fixed.eval_fraction: must be between 0 and 1" in text
    zero0 = plan_errors(sweep("sft", model="org/model", dataset=str(sft_data), zero_stage=0, offload=True))
    assert zero0 == ["fixed.offload: CPU offload needs ZeRO: set zero_stage to 1, 2 or 3"]
    grpo = plan_errors(
        sweep(
            "grpo",
            model="org/model",
            dataset=str(grpo_data),
            batch_size=3,
            num_generations=2,
            rewards={"boxed_mtch": 1.0},
        )
    )
    text = "\n".join(grpo)
    assert "unknown reward 'boxed_mtch'" in text and "did you mean 'boxed_match'?" in text
    assert "fixed.num_generations: must divide batch_size x num_workers x grad_accum (3 x 1 x 1)" in text


def test_a_sweep_of_lora_settings_plans_one_trial_per_cell(sft_data):
    raw = sweep("sft", model="org/model", dataset=str(sft_data))
    raw["grid"] = {"lora_r": [8, 16], "learning_rate": [1e-4, 2e-4], "target_modules": [["q_proj", "v_proj"], "auto"]}
    plan = make_plan(parse(raw))
    assert len(plan.trials) == 8 and len({t.key for t in plan.trials}) == 8
    names = {plan.run_name(t) for t in plan.trials}
    assert "r8 lr0.0001 target_modules=q_proj,v_proj · sft" in names


# -- LoRA targets ----------------------------------------------------------------------------------
def skeleton_of(config) -> torch.nn.Module:
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


@pytest.mark.parametrize(
    "config, expected",
    [
        (LlamaConfig(**SMALL), ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        (Qwen2Config(**SMALL), ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        (Phi3Config(**SMALL, pad_token_id=0), ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
    ],
    ids=["llama", "qwen2", "phi3"],
)
def test_auto_targets_follow_the_architecture(config, expected):
    model = skeleton_of(config)
    assert resolve_targets(model, "auto", config.model_type) == expected
    assert "lm_head" in linear_layer_names(model)


def test_a_wrong_target_module_lists_the_models_linear_layers(tmp_path, tiny_model, sft_data):
    model = skeleton_of(Phi3Config(**SMALL, pad_token_id=0))
    with pytest.raises(TargetModuleError) as info:
        resolve_targets(model, ["q_proj", "o_proj"], "phi3")
    assert str(info.value) == (
        "target_modules 'q_proj' match no linear layer of this phi3 model; "
        "its linear layers are: down_proj, gate_up_proj, lm_head, o_proj, qkv_proj"
    )
    # the trial's driver checks the names before it starts any worker
    params = SFTParams(model=str(tiny_model), dataset=str(sft_data), target_modules="qkv_proj")
    with pytest.raises(TargetModuleError, match="its linear layers are: down_proj, gate_proj, k_proj, lm_head"):
        prepare("sft", params, tmp_path)


# -- chat template ---------------------------------------------------------------------------------
def test_the_rendered_example_is_checked_and_kept(tmp_path, tiny_model, sft_data):
    params = SFTParams(model=str(tiny_model), dataset=str(sft_data))
    prepared = prepare("sft", params, tmp_path)
    text = (tmp_path / CHAT_EXAMPLE).read_text()
    first = prepared.train[0]
    assert text.startswith("rendered with the tokenizer's chat template")
    assert f"<|im_start|>user\n{first.prompt[0]['content']}<|im_end|>\n<|im_start|>assistant\n" in text
    assert f"trained on ==\n{first.completion}<|im_end|>" in text


def test_template_mismatches_fail_before_training(tiny_model, tiny_model_plain):
    example = Example(line=7, prompt=({"role": "user", "content": "What is 2 + 2?"},), completion="\\boxed{4}")
    with pytest.raises(ChatTemplateError, match="chat_template is 'on' but this tokenizer has no chat template"):
        Renderer(AutoTokenizer.from_pretrained(tiny_model_plain), "on")

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = (  # the generation prompt says "assistant", the answer turn "bot"
        "{% for m in messages %}<|im_start|>{{ 'bot' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="line 7: the chat template renders the prompt differently"):
        Renderer(tokenizer).check(example, "sft")

    tokenizer.chat_template = (  # drops the assistant's words: nothing left to learn
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] != 'assistant' %}{{ m['content'] }}"
        "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="does not hold the completion"):
        Renderer(tokenizer).check(example, "sft")

    plain = Renderer(AutoTokenizer.from_pretrained(tiny_model_plain))
    check = plain.check(example, "sft")
    assert check.prompt == "What is 2 + 2?\n" and "\\boxed{4}" in check.completion
    assert plain.sft_row(example) == {"prompt": "What is 2 + 2?\n", "completion": "\\boxed{4}"}


def test_write_example_says_what_grpo_generates(tmp_path, tiny_model):
    renderer = Renderer(AutoTokenizer.from_pretrained(tiny_model))
    example = Example(line=1, prompt=({"role": "user", "content": "hi"},), answer="2")
    text = write_example(tmp_path / "x.txt", renderer, renderer.check(example, "grpo")).read_text()
    assert "== prompt:" in text and "generated" in text


# -- rewards ---------------------------------------------------------------------------------------
def test_rewards_score_with_the_evaluators_scorers_and_keep_their_weights():
    funcs, weights = build_rewards(
        {"boxed_match": 1.0, "format": 0.5, "length_penalty": 0.1}, "boxed", max_completion_length=10
    )
    assert [f.__name__ for f in funcs] == ["boxed_match", "format", "length_penalty"] and weights == [1.0, 0.5, 0.1]
    boxed_match, fmt, length = funcs
    completions = ["The sum is \\boxed{1,000}.", [{"role": "assistant", "content": "\\boxed{7}"}], "1000", ""]
    gold = ["1000", "8", "1000", "1"]
    assert boxed_match(completions=completions, answer=gold) == [1.0, 0.0, 0.0, 0.0]
    assert fmt(completions=completions) == [1.0, 1.0, 0.0, 0.0]
    assert length(completions=completions, completion_ids=[[1] * 10, [1] * 5, [1], []]) == [-1.0, -0.5, -0.1, 0.0]

    (json_valid, constraints), _ = build_rewards({"json_valid": 1, "json_constraints": 1}, "json", 10)
    outputs = ['```json\n{"name": "Ada", "age": 36}\n```', '{"name": "Ada", "age": 50}', '{"name": "Ada"}', "no json"]
    schema = json.dumps({"type": "object", "required": ["name", "age"]})
    # the json_output task's constraint language: bounds on a value, sums per group
    rules = json.dumps([{"path": "age", "max": 40}, {"path": "age", "min": 30}])
    assert json_valid(completions=outputs, schema=[""] * 4) == [1.0, 1.0, 1.0, 0.0]
    assert json_valid(completions=outputs, schema=[schema] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert constraints(completions=outputs, constraints=[rules] * 4, schema=[""] * 4) == [1.0, 0.5, 1.0, 0.0]
    # an answer that is not valid for the row's schema meets no constraint
    assert constraints(completions=outputs, constraints=[rules] * 4, schema=[schema] * 4) == [1.0, 0.5, 0.0, 0.0]
    capacity = json.dumps([{"path": "jobs[*]", "field": "load", "sum_by": "hour", "max": 10}])
    plan = '{"jobs": [{"hour": 9, "load": 6}, {"hour": 9, "load": 5}, {"hour": 10, "load": 4}]}'
    assert constraints(completions=[plan], constraints=[capacity], schema=[""]) == [0.0]
    # reasoning is stripped before scoring, as in the evaluate workload
    (think_match,), _ = build_rewards({"boxed_match": 1}, "boxed", 10, opens_thinking=True)
    assert think_match(completions=["\\boxed{3} wait</think>\\boxed{4}", "\\boxed{4}"], answer=["4", "4"]) == [1.0, 0.0]


# -- checkpoints -----------------------------------------------------------------------------------
def test_only_complete_checkpoints_are_resumed_from(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / MARKER).write_text("{}")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert discard_incomplete(tmp_path) == [tmp_path / "checkpoint-15"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-5"]
    assert latest_checkpoint(tmp_path / "nothing") is None


# -- QLoRA -----------------------------------------------------------------------------------------
@pytest.fixture
def single_process(monkeypatch):
    """The environment a launcher gives one training process (rank 0 of 1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}
    for name, value in {**env, "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "DS_ACCELERATOR": "cpu"}.items():
        monkeypatch.setenv(name, value)
    yield
    # The process group stays: DeepSpeed keeps references to it, so a second training in this
    # process joins the same group of one (a Ray Train worker trains once and exits).
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)


def run_alone(params: SFTParams, data: Path, folder: Path, held_out_rows: int, report=lambda _: None) -> dict:
    """A whole SFT trial's worker side in this process (no Ray): train, save, evaluate a few rows."""
    train, held_out = split(load_examples(data, "sft"), 0.1, 0)
    return run("sft", params, train, held_out[:held_out_rows], folder, Worker(), report)


def test_qlora_loads_4bit_weights_and_trains_a_step_under_deepspeed(tmp_path, tiny_model, sft_data, single_process):
    params = SFTParams(
        model=str(tiny_model),
        dataset=str(sft_data),
        quantization=4,
        zero_stage=2,
        max_steps=1,
        batch_size=2,
        save_steps=1,
        max_new_tokens=4,
    )
    reports: list[dict] = []
    metrics = run_alone(params, sft_data, tmp_path, 2, reports.append)
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["info"]["linear4bit_layers"] == 3 * 7  # every projection of the 3 layers is NF4
    assert metrics["step"] == 1 and reports[0]["step"] == 1 and reports[0]["loss"] > 0
    assert "eval_loss" in reports[0] and "eval_format_ok_rate" in metrics
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "checkpoint-1" / MARKER).is_file()
    # killed after its last save (during the evaluation), the trial trains no step past the end
    again = run_alone(params, sft_data, tmp_path, 2, reports.append)
    assert again["step"] == 1 and again["resumed_from_step"] == 1 and again["loss"] == reports[0]["loss"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1"]


def test_zero3_saves_the_whole_adapter_gathered_from_the_shards(tmp_path, tiny_model, sft_data, single_process):
    from safetensors.torch import load_file

    params = SFTParams(
        model=str(tiny_model), dataset=str(sft_data), zero_stage=3, max_steps=1, batch_size=2, lora_r=4, save_steps=1
    )
    metrics = run_alone(params, sft_data, tmp_path, 1)
    assert metrics["step"] == 1
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    hidden = AutoModelForCausalLM.from_pretrained(tiny_model).config.hidden_size
    q_a = next(v for k, v in tensors.items() if "q_proj.lora_A" in k)
    assert tuple(q_a.shape) == (4, hidden)  # not ZeRO-3's empty placeholder of a partitioned parameter
    assert len(tensors) == 2 * 7 * AutoModelForCausalLM.from_pretrained(tiny_model).config.num_hidden_layers


def test_sweeps_list_shows_the_training_workloads_and_rewards():
    from typer.testing import CliRunner

    from sweeps import cli

    runner = CliRunner()
    workloads = runner.invoke(cli.app, ["list", "workloads"], env={"COLUMNS": "400"})
    assert workloads.exit_code == 0 and "sft" in workloads.output and "grpo" in workloads.output
    assert re.search(r"num_generations +int +4 +completions sampled per prompt", workloads.output)
    assert re.search(r"zero_stage +0 \| 1 \| 2 \| 3 +2 +DeepSpeed ZeRO stage", workloads.output)
    rewards = runner.invoke(cli.app, ["list", "rewards"], env={"COLUMNS": "200"})
    assert rewards.exit_code == 0, rewards.output
    for name in ("boxed_match", "format", "json_valid", "json_constraints", "length_penalty"):
        assert name in rewards.output
    assert "boxed_match  1 when the \\boxed{} answer equals the row's answer." in rewards.output


def test_cpu_offload_trains_and_checkpoints_under_zero2(tmp_path, tiny_model, sft_data, single_process):
    """``offload: true`` reaches DeepSpeed: optimizer state on the CPU, stepped by DeepSpeed's AdamW."""
    params = SFTParams(
        model=str(tiny_model),
        dataset=str(sft_data),
        zero_stage=2,
        offload=True,
        max_steps=2,
        batch_size=2,
        lora_r=4,
        save_steps=2,
    )
    reports: list[dict] = []
    metrics = run_alone(params, sft_data, tmp_path, 1, reports.append)
    assert metrics["step"] == 2 and [r["step"] for r in reports if "loss" in r] == [1, 2]
    args = torch.load(tmp_path / "checkpoints" / "checkpoint-2" / "training_args.bin", weights_only=False)
    zero = args.hf_deepspeed_config.config["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "cpu"
    assert args.hf_deepspeed_config.config["optimizer"]["type"] == "AdamW"


def test_a_worker_group_left_by_a_dead_controller_is_released(ray_session, tmp_path):
    """The leak behind stopped trials holding their CPUs: a placement group outlives the actor
    that created it (it belongs to the job). Rank 0 notes its group; the driver removes it."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=1)
    class Rank0:
        def start(self, trial_dir: str) -> None:
            record_worker_group(Path(trial_dir))

    @ray.remote(num_cpus=0)
    class Controller:
        def start(self, trial_dir: str) -> str:
            group = placement_group([{"CPU": 1}])
            ray.get(group.ready())
            rank0 = Rank0.options(scheduling_strategy=PlacementGroupSchedulingStrategy(group)).remote()
            ray.get(rank0.start.remote(trial_dir))
            return group.id.hex()

    controller = Controller.remote()
    group_id = ray.get(controller.start.remote(str(tmp_path)))
    ray.kill(controller)  # as when Tune stops the trial: the controller goes, its group stays
    assert (tmp_path / WORKER_GROUPS).read_text().split() == [group_id]
    group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id)))
    assert placement_group_table(group)["state"] == "CREATED"

    assert release_worker_groups(tmp_path) == 1
    assert placement_group_table(group)["state"] == "REMOVED"
    assert release_worker_groups(tmp_path) == 0  # nothing left to free: safe to call again

    record_worker_group(tmp_path)  # outside any placement group (a bare run): nothing noted
    assert not (tmp_path / WORKER_GROUPS).exists()


def test_a_worker_failure_is_told_as_what_happened_and_where_resume_goes_on(tmp_path):
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    bad_row = ValueError("row 3: field 'answer' is missing")
    raised = WorkerGroupError("rank 0 raised", {0: bad_row})
    assert explain(raised, tmp_path, "lora") is bad_row  # the worker's own exception, as it raised it

    died = WorkerHealthCheckFailedError(
        "A worker health check failed.\nWorker info: Worker(log_file_path='/tmp/ray/w1.log')", RuntimeError("EOF")
    )
    broken_collective = RuntimeError("gloo: connection closed by peer")
    both = WorkerGroupError("ranks 0 and 1", {0: broken_collective, 1: died})
    before_any_checkpoint = explain(both, tmp_path, "lora")
    assert isinstance(before_any_checkpoint, WorkerDiedError)
    assert str(before_any_checkpoint).startswith("the process of Ray Train worker rank 1 died")
    assert "its log: /tmp/ray/w1.log" in str(before_any_checkpoint)
    assert "`sweeps resume lora` starts the trial again" in str(before_any_checkpoint)

    for step in (4, 8):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-4" / MARKER).write_text("{}")  # checkpoint-8 was cut off
    assert "`sweeps resume lora` continues from its checkpoint at step 4" in str(explain(both, tmp_path, "lora"))

    other = KeyError("not from the workers")
    assert explain(other, tmp_path, "lora") is other
