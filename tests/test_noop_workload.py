"""The noop workload (no model work) through the whole platform: Tune, result.json, MLflow, relaunch.

Needs the project installed with its entry points (`pip install -e .`): `noop` is registered in
pyproject.toml like every other workload.
"""

from __future__ import annotations

from sweep_helpers import child_runs, run_file

from sweeps.store import SweepStore

XS = [0, 1, 2.5, -2]


def expected_loss(x: float) -> float:
    return (x - 1) ** 2


def test_noop_trials_run_record_and_mirror(sweep_file, ray_session, tmp_path):
    path = sweep_file(
        name="noop-small",
        workload="noop",
        experiment="noop-small",
        max_concurrent=2,
        fixed={"seconds": 0.05},
        grid={"x": XS},
    )
    plan, summary, _ = run_file(path)
    assert summary.counts["done"] == len(XS) and summary.ran == len(XS)

    store = SweepStore(plan.spec.sweep_dir)
    for trial in plan.trials:
        record = store.result(trial.key)
        assert record["status"] == "completed"
        assert record["metrics"] == {"loss": expected_loss(trial.config["x"]), "slept_s": 0.05}

    runs = {r.data.tags["sweeps.trial_key"]: r for r in child_runs(tmp_path / "runs", "noop-small")}
    assert sorted(runs) == sorted(t.key for t in plan.trials)
    for trial in plan.trials:
        run = runs[trial.key]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["loss"] == expected_loss(trial.config["x"])
        assert float(run.data.params["x"]) == trial.config["x"]
        assert run.info.run_name == plan.run_name(trial) == f"noop x={trial.config['x']:g}"

    _, summary, _ = run_file(path)  # idempotent: nothing left to run, no run duplicated
    assert summary.skipped == len(XS) and summary.ran == 0
    assert len(child_runs(tmp_path / "runs", "noop-small")) == len(XS)
