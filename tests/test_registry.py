"""One registry type for workloads, techniques, tasks and rewards; every parameter documented where it is defined."""

from __future__ import annotations

import pickle
import re
import sys
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest
from typer.testing import CliRunner

from evaluators.kvcache import TECHNIQUES
from evaluators.tasks import TASKS
from sweeps import cli
from sweeps.errors import SpecError
from sweeps.fielddocs import Parameter, field_docs, parameters, summary
from sweeps.registry import WORKLOADS, Registry, UnknownName
from trainers.rewards import REWARDS, needed_fields

#: longest help a parameter may have: one line of `sweeps list`, not a paragraph
MAX_HELP = 160


def registered_parts() -> list[tuple[str, object]]:
    """Every part `sweeps list` shows: each workload's own schemas, then every part it offers."""
    parts: list[tuple[str, object]] = []
    for name, workload in WORKLOADS.items():
        parts += [(f"workload {name}", schema) for schema in workload.schemas({})]
        for section, offered in workload.catalog().items():
            parts += [(f"{section} {part_name}", part) for part_name, part in offered.items()]
    return parts


def test_every_parameter_of_every_registered_part_has_a_one_line_help():
    parts = registered_parts()
    kinds = {label.split()[0] for label, _ in parts}
    assert {"workload", "techniques", "tasks", "rewards"} <= kinds
    assert sum(len(parameters(part)) for _, part in parts) > 60  # the schemas' fields were found at all
    problems = []
    for label, part in parts:
        if not summary(part):
            problems.append(f"{label}: no docstring")
        for p in parameters(part):
            if not p.help.strip():
                problems.append(f"{label}.{p.name}: no `#:` comment above the field")
            elif len(p.help) > MAX_HELP:
                problems.append(f"{label}.{p.name}: help longer than one line ({len(p.help)} characters)")
    assert not problems, "\n".join(problems)


@dataclass
class _Documented:
    """A part with documented and undocumented fields."""

    #: the first line
    #: and its second
    first: int = 1
    second: str = "x"  # a plain comment is no documentation
    #: a class variable is not a parameter
    kind: ClassVar[str] = "k"
    #: one of two
    choice: Literal["a", "b"] | None = None
    #: grows
    items: list[float] = field(default_factory=lambda: [0.5])


@dataclass
class _Child(_Documented):
    #: documented again in the subclass
    second: str = "y"
    #: added by the subclass
    extra: int = field(default=0)


def test_field_docs_come_from_the_comment_above_each_field_and_are_inherited():
    assert field_docs(_Documented) == {
        "first": "the first line and its second",
        "second": "",
        "choice": "one of two",
        "items": "grows",
    }
    assert field_docs(_Child)["first"] == "the first line and its second"
    assert field_docs(_Child)["second"] == "documented again in the subclass"
    # a technique that extends another keeps the parent's documentation of the inherited fields
    assert field_docs(TECHNIQUES["pyramidkv"])["window_size"] == field_docs(TECHNIQUES["snapkv"])["window_size"] != ""
    assert parameters(_Child) == [
        Parameter("first", "int", "1", "the first line and its second"),
        Parameter("second", "str", "'y'", "documented again in the subclass"),
        Parameter("choice", "'a' | 'b' | null", "null", "one of two"),
        Parameter("items", "list[float]", "[0.5]", "grows"),
        Parameter("extra", "int", "0", "added by the subclass"),
    ]
    rag_data = Parameter("data_dir", "str", "required", "HELMET's data folder (the one holding kilt/)")
    assert parameters(TASKS["rag"])[0] == rag_data
    assert parameters(REWARDS["boxed_match"]) == []  # a reward is a function: no parameters of its own


def _row(output: str, name: str) -> str:
    """The first table row of parameter ``name`` in `sweeps list` output."""
    return next(line.strip() for line in output.splitlines() if line.split()[:1] == [name])


def test_sweeps_list_shows_each_parameter_with_type_default_and_its_own_help():
    runner = CliRunner(env={"COLUMNS": "400"})
    techniques = runner.invoke(cli.app, ["list", "techniques"])
    assert techniques.exit_code == 0, techniques.output
    snapkv = techniques.output[techniques.output.index("snapkv  ") :]
    assert snapkv.startswith("snapkv  " + summary(TECHNIQUES["snapkv"]))
    doc = field_docs(TECHNIQUES["snapkv"])["pooling"]
    assert re.match(r"pooling +'avgpool' \| 'maxpool' +'avgpool' +" + re.escape(doc), _row(snapkv, "pooling"))

    workloads = runner.invoke(cli.app, ["list"])  # workloads is the default
    assert workloads.exit_code == 0, workloads.output
    evaluate = workloads.output[workloads.output.index("evaluate  ") : workloads.output.index("grpo  ")]
    assert "sweeps list techniques" in evaluate and "sweeps list tasks" in evaluate
    assert re.match(r"kv_bits +2 \| 4 \| 8 \| null +null +store the KV cache quantized", _row(evaluate, "kv_bits"))
    sft = workloads.output[workloads.output.index("sft  ") :]
    assert _row(sft, "completion_only_loss").split()[:3] == ["completion_only_loss", "bool", "true"]

    tasks = runner.invoke(cli.app, ["list", "tasks"]).output
    for name, task in TASKS.items():
        assert f"{name}  {summary(task)}" in tasks
    assert field_docs(TASKS["niah"])["haystack"] in tasks

    rewards = runner.invoke(cli.app, ["list", "rewards"])
    assert rewards.exit_code == 0, rewards.output
    for name, reward in REWARDS.items():  # each with its one line, from its own docstring
        assert f"{name}  {summary(reward)}" in rewards.output

    wrong = runner.invoke(cli.app, ["list", "reward"])
    assert isinstance(wrong.exception, SpecError) and "did you mean 'rewards'?" in wrong.exception.render()


def test_a_name_not_registered_names_the_kind_what_is_accepted_and_a_guess():
    with pytest.raises(UnknownName) as info:
        TECHNIQUES["snapvk"]
    text = str(info.value)
    assert "technique: unknown technique 'snapvk'" in text and "did you mean 'snapkv'?" in text
    assert "accepted: 'baseline', 'duoattention'" in text
    assert isinstance(info.value, KeyError) and isinstance(info.value, SpecError)
    assert str(pickle.loads(pickle.dumps(info.value))) == text  # as a Ray worker sends it to the driver
    # Mapping reads stay quiet about it
    assert TASKS.get("pasky") is None and "pasky" not in TASKS and "passkey" in TASKS
    assert list(TASKS) == TASKS.names() == sorted(TASKS.names())
    with pytest.raises(SpecError, match="did you mean 'evaluate'"):
        WORKLOADS["evaluat"]
    empty = Registry("gadget", empty_hint="install one")
    with pytest.raises(UnknownName, match=r"gadget: no gadget is registered \(install one\)"):
        empty["x"]


def test_register_uses_the_part_name_and_refuses_a_name_twice():
    parts: Registry[object] = Registry("widget")

    @parts.register
    class Widget:
        name = "wid"

    @parts.register
    def gizmo() -> None:
        """Functions are registered under their own name."""

    assert parts.names() == ["gizmo", "wid"] and parts["wid"] is Widget and parts["gizmo"] is gizmo
    with pytest.raises(ValueError, match="widget 'wid' is registered twice"):
        parts.register(type("Other", (), {"name": "wid"}))
    built: Registry[object] = Registry("instance", build=lambda cls: cls())
    assert isinstance(built[built.register(Widget).name], Widget)


def test_rewards_are_registered_functions_whose_signature_says_the_row_fields_they_need():
    assert REWARDS.names() == ["boxed_match", "format", "json_constraints", "json_valid", "length_penalty"]
    assert needed_fields({"boxed_match": 1.0, "format": 0.2, "json_constraints": 1.0}) == ("answer", "constraints")
    assert needed_fields({"json_valid": 1.0, "length_penalty": 0.1}) == ()  # a schema is optional


def test_other_packages_add_parts_through_an_entry_point_group(tmp_path, monkeypatch):
    """A real distribution on sys.path (a dist-info folder), read through importlib.metadata."""
    (tmp_path / "gadgets_registry.py").write_text(
        "from sweeps.registry import Registry\nGADGETS = Registry('gadget', group='sweeps_test.gadgets')\n"
    )
    # a module that registers its part itself, and one that only names it
    (tmp_path / "gadgets_alpha.py").write_text(
        "from gadgets_registry import GADGETS\n\n@GADGETS.register\nclass Alpha:\n    name = 'alpha'\n"
    )
    (tmp_path / "gadgets_beta.py").write_text("def beta():\n    '''A plain function.'''\n")
    info = tmp_path / "sweeps_test_gadgets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sweeps-test-gadgets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[sweeps_test.gadgets]\nalpha = gadgets_alpha:Alpha\nbeta = gadgets_beta:beta\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from gadgets_registry import GADGETS

    assert GADGETS.names() == ["alpha", "beta"] and "alpha" in GADGETS
    assert "gadgets_alpha" not in sys.modules  # listing names imports nothing
    assert GADGETS["alpha"].__name__ == "Alpha"  # its module registered it on import: not twice
    assert GADGETS["beta"] is sys.modules["gadgets_beta"].beta
    with pytest.raises(UnknownName, match="did you mean 'beta'"):
        GADGETS["bta"]

    taken = Registry("gadget", group="sweeps_test.gadgets")

    @taken.register
    class Beta:  # a second part under a name an installed package already uses
        name = "beta"

    with pytest.raises(ValueError, match="gadget 'beta' is registered twice"):
        taken.names()
