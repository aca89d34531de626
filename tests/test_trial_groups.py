"""Trial groups: trials that differ only in compression share each prefill, each keeping its own identity.

Packing is checked on its own (no Ray); the sweeps run on the session's real Ray with the tiny
model, a real MLflow store, and compare a grouped launch with one trial per configuration.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from sweep_helpers import child_runs, run_file
from typer.testing import CliRunner

import sweeps
from sweeps import cli
from sweeps.groups import concurrent_slots, pack
from sweeps.plan import Trial
from sweeps.store import SweepStore


def _trials(*families: tuple[str, int]) -> list[Trial]:
    """Trials in grid order; ``(family, n)`` gives n trials sharing the group key ``family``."""
    out = []
    for family, count in families:
        for i in range(count):
            out.append(Trial(key=f"{family}{i}", canonical={}, config={"family": family, "i": i}))
    return out


def _family(params) -> str | None:
    return None if params["family"] == "alone" else str(params["family"])


def test_packing_fills_the_slots_and_respects_the_cap():
    trials = _trials(("a", 10), ("b", 3), ("alone", 2))
    sizes = lambda groups: [len(g.members) for g in groups]  # noqa: E731
    # one slot: the largest groups the cap allows; trials without a key always alone
    assert sizes(pack(trials, _family, slots=1, max_group=16)) == [10, 3, 1, 1]
    assert sizes(pack(trials, _family, slots=1, max_group=4)) == [4, 3, 3, 3, 1, 1]
    # as many groups as trials that can run at once: the widest bucket is cut first
    groups = pack(trials, _family, slots=6, max_group=16)
    assert len(groups) >= 6 and sorted(sizes(groups)) == [1, 1, 3, 3, 3, 4]
    # more slots than trials: every trial runs on its own, none is lost
    groups = pack(trials, _family, slots=40, max_group=16)
    assert sizes(groups) == [1] * 15
    # grid order kept inside groups and between them; every trial exactly once
    groups = pack(trials, _family, slots=2, max_group=16)
    assert [t.key for g in groups for t in g.members] == [t.key for t in trials]
    # sharing off (max_group 1) or a workload that never groups: one trial per run
    assert sizes(pack(trials, _family, slots=1, max_group=1)) == [1] * 15
    assert sizes(pack(trials, None, slots=1, max_group=16)) == [1] * 15


def test_slots_come_from_max_concurrent_and_the_cluster():
    assert concurrent_slots(None, cpus=16, gpus=0, cpu=4, gpu=0) == 4
    assert concurrent_slots(2, cpus=16, gpus=0, cpu=4, gpu=0) == 2
    assert concurrent_slots(None, cpus=64, gpus=8, cpu=4, gpu=1) == 8
    assert concurrent_slots(None, cpus=1, gpus=0, cpu=4, gpu=0) == 1


@pytest.fixture
def wrong_pattern(tmp_path) -> Path:
    """A DuoAttention head pattern for a model of another shape: valid to plan, fails when prepared."""
    path = tmp_path / "pattern.tsv"
    path.write_text("\n".join("\t".join(["0.5"] * 7) for _ in range(3)) + "\n")
    return path


@pytest.fixture
def grouped_sweep(sweep_file, tiny_model):
    def make(name: str, share_prefill=True, methods=None, **top):
        return sweep_file(
            name=name,
            experiment=name,
            max_concurrent=1,
            share_prefill=share_prefill,
            fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 2},
            grid={
                "method": methods
                or [
                    {"technique": "baseline"},
                    {"technique": "snapkv", "window_size": 8, "cache_size": [32, 64], "pooling": "maxpool"},
                    {"technique": "streamingllm", "cache_size": 32},
                ]
            },
            **top,
        )

    return make


def _generations(store: SweepStore, key: str) -> list[dict]:
    return [json.loads(line) for line in (store.trial_dir(key) / "generations.jsonl").read_text().splitlines()]


def test_a_group_gives_each_member_its_own_result_equal_to_running_alone(ray_session, grouped_sweep):
    together = grouped_sweep("together")
    plan, summary, out = run_file(together)
    assert summary.counts["done"] == 4 and summary.failed == 0
    assert "Trial groups: 4 trial(s) in 1 group" in out
    store = SweepStore(plan.spec.sweep_dir)
    infos = [store.result(t.key)["info"] for t in plan.trials]
    assert {i["group_size"] for i in infos} == {4}
    assert {i["group_prefills"] for i in infos} == {2}  # one prefill per sample for four trials

    apart = grouped_sweep("apart", share_prefill=False)
    plan_apart, summary_apart, out_apart = run_file(apart)
    assert summary_apart.counts["done"] == 4 and "Trial groups" not in out_apart
    alone = SweepStore(plan_apart.spec.sweep_dir)
    assert [t.key for t in plan.trials] == [t.key for t in plan_apart.trials]  # same trials, same keys
    for trial in plan.trials:
        grouped_rows, alone_rows = _generations(store, trial.key), _generations(alone, trial.key)
        assert [r["output"] for r in grouped_rows] == [r["output"] for r in alone_rows], trial.key
        assert [r["kv_cache_bytes"] for r in grouped_rows] == [r["kv_cache_bytes"] for r in alone_rows]
        for metric in ("score", "kv_cache_mb", "kv_cache_tokens"):
            assert store.result(trial.key)["metrics"].get(metric) == alone.result(trial.key)["metrics"].get(metric)
        assert alone.result(trial.key)["info"]["group_size"] == 1
    runs = child_runs(plan.spec.storage_path, "together")
    assert sorted(r.data.tags["sweeps.trial_key"] for r in runs) == sorted(t.key for t in plan.trials)
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_failing_member_fails_alone_and_only_it_is_retried(ray_session, grouped_sweep, wrong_pattern):
    path = grouped_sweep(
        "member-fails",
        retries=1,
        methods=[
            {"technique": "baseline"},
            {"technique": "streamingllm", "cache_size": 32},
            {"technique": "duoattention", "cache_size": 40, "sink_tokens": 4, "pattern": str(wrong_pattern)},
        ],
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 2 and summary.failed == 1
    store = SweepStore(plan.spec.sweep_dir)
    by_technique = {t.config["technique"]: store.result(t.key) for t in plan.trials}
    failed = by_technique["duoattention"]
    assert failed["status"] == "failed" and "head pattern" in failed["error"]["message"]
    assert failed["attempt"] == 2  # retried once, alone
    for technique in ("baseline", "streamingllm"):
        assert by_technique[technique]["status"] == "completed"
        assert by_technique[technique]["attempt"] == 1  # finished in the first try: never run again
    assert out.count("↻") == 1 and "head pattern" in out
    runs = {r.data.tags["sweeps.trial_key"]: r for r in child_runs(plan.spec.storage_path, "member-fails")}
    assert len(runs) == 3
    assert sorted(r.info.status for r in runs.values()) == ["FAILED", "FINISHED", "FINISHED"]


def test_plan_shows_the_groups_and_a_relaunch_runs_only_new_members(ray_session, grouped_sweep):
    path = grouped_sweep("grows")
    shown = CliRunner().invoke(cli.app, ["plan", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "group" in shown.output and "4 trial(s) in 1 group" in shown.output
    launched = CliRunner().invoke(cli.app, ["launch", str(path)], env={"COLUMNS": "200"})
    assert launched.exit_code == 0, launched.output
    # the launch says what the group saved: 2 samples x 4 trials, one prefill per sample
    assert "Shared prefills: 2 prompt prefill(s) for 8 trial-sample(s), 6 saved" in launched.output
    assert re.search(r"\(ran 4, skipped 0 already completed\) in [\d.]+ s", launched.output), launched.output
    plan, _ = sweeps.plan_file(path, [])
    first = {t.key: SweepStore(plan.spec.sweep_dir).result(t.key)["finished_at"] for t in plan.trials}
    grown, summary, out = run_file(path, "grid.method[1].cache_size=[32,64,48,96]")
    assert summary.skipped == 4 and summary.ran == 2 and summary.counts["done"] == 6
    store = SweepStore(grown.spec.sweep_dir)
    assert all(store.result(key)["finished_at"] == when for key, when in first.items())
    new = [t.key for t in grown.trials if t.key not in first]
    assert {store.result(k)["info"]["group_size"] for k in new} == {2}
    grown_file = ["plan", str(path), "--set", "grid.method[1].cache_size=[32,64,48,96]"]
    shown = CliRunner().invoke(cli.app, grown_file, env={"COLUMNS": "200"})
    assert "6 trial(s); 6 already completed" in shown.output


@pytest.mark.parametrize(
    ("value", "where", "message"),
    [
        ({"max_groups": 4}, "share_prefill.max_groups", "did you mean 'max_group'?"),
        ({"max_group": 0}, "share_prefill.max_group", "at least 1"),
        ("yes", "share_prefill", "accepted: true, false, or {max_group: N}"),
    ],
)
def test_share_prefill_is_checked_in_the_files_own_terms(grouped_sweep, capsys, monkeypatch, value, where, message):
    path = grouped_sweep("bad-share", share_prefill=value)
    monkeypatch.setattr(sys, "argv", ["sweeps", "plan", str(path)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert f"{where}: " in err and message in err, err
    assert "Traceback" not in out + err
