"""When a trial records an attempt: once Tune runs it, never for an actor Tune dropped while it started.

Tune builds a class trainable's actor (whose constructor runs the workload's setup: the model
loads there) before it hands the actor the trial. It may drop that actor mid-construction: its
node died while the model loaded, or another actor came free first and took the trial over.
Such a start is no attempt; counting it made a trial that ran once look retried, with no failure
anyone could name (seen in CI on a three-node cluster). The trainables below are real Tune
trainables, built and run in this process as a Ray actor would build and run them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray import tune

from sweeps.store import SweepStore
from sweeps.trial import wrap
from sweeps.workload import GroupResult, TrialResult


class PairTrainable(tune.Trainable):
    """A trial group whose members each report ``x`` from their parameters."""

    def setup(self, config: dict) -> None:
        self._take(config)

    def reset_config(self, new_config: dict) -> bool:
        """Takes the next trial group in the same actor (``reuse_actors``), as the evaluator does."""
        self._take(new_config)
        return True

    def _take(self, config: dict) -> None:
        self.members = config["members"]
        if any(m["params"].get("broken") for m in self.members):
            raise RuntimeError("the model did not load")

    def step(self) -> GroupResult:
        return GroupResult(
            results={m["context"]["key"]: TrialResult(metrics={"x": float(m["params"]["x"])}) for m in self.members}
        )


def group(folder: Path, **params: object) -> dict:
    """Tune's config of one trial group of two members, ``a`` and ``b``, stored under ``folder``."""
    members = [
        {
            "params": {"x": x, **params},
            "context": {"sweep": "s", "key": key, "trial_dir": str(folder / key), "workload": "noop"},
        }
        for key, x in (("a", 1), ("b", 2))
    ]
    return {"trial": {"members": members}}


def attempts(store: SweepStore, name: str) -> dict[str, int | None]:
    out = {}
    for key in ("a", "b"):
        path = store.trial_dir(key) / name
        out[key] = json.loads(path.read_text())["attempt"] if path.exists() else None
    return out


def test_an_actor_dropped_before_tune_runs_it_records_no_attempt(tmp_path):
    store = SweepStore(tmp_path)
    recorded = wrap(PairTrainable, grouped=True)
    recorded(config=group(tmp_path))  # built, then dropped by Tune: never asked to run
    assert attempts(store, "started.json") == {"a": None, "b": None}
    assert store.state("a", launcher_alive=True).status == "pending"

    taken = recorded(config=group(tmp_path))
    result = taken.train()
    assert result["done"]
    assert attempts(store, "started.json") == {"a": 1, "b": 1}
    assert attempts(store, "result.json") == {"a": 1, "b": 1}
    assert store.result("b")["metrics"]["x"] == 2.0

    # a reused actor (Tune's reset_config) that is dropped before its first step records nothing either
    redone = group(tmp_path)
    for path in tmp_path.glob("*/result.json"):
        path.unlink()
    assert taken.reset_config(redone)
    assert attempts(store, "started.json") == {"a": 1, "b": 1}
    taken.train()
    assert attempts(store, "result.json") == {"a": 2, "b": 2}


def test_a_setup_that_fails_is_an_attempt_whose_start_and_result_agree(tmp_path):
    store = SweepStore(tmp_path)
    recorded = wrap(PairTrainable, grouped=True)
    with pytest.raises(RuntimeError, match="the model did not load"):
        recorded(config=group(tmp_path, broken=True))
    assert attempts(store, "started.json") == {"a": 1, "b": 1}
    assert attempts(store, "result.json") == {"a": 1, "b": 1}
    assert store.result("a")["status"] == "failed"
    assert "the model did not load" in store.result("a")["error"]["message"]
