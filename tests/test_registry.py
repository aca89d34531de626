"""One registry type for workloads, techniques, tasks and rewards."""

from __future__ import annotations

import pickle
import sys

import pytest

from evaluators.kvcache import TECHNIQUES
from evaluators.tasks import TASKS
from sweeps.errors import SpecError
from sweeps.registry import WORKLOADS, Registry, UnknownName
from trainers.rewards import REWARDS, needed_fields


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
