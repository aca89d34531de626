"""Secrets (``hf_token`` and any key that looks like one) never show: not in output, run names, errors,
storage, Tune's state or MLflow. They are credentials, not axes, and resume takes them from the environment."""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import ray.cloudpickle
import yaml
from mlflow import MlflowClient
from ray import tune
from rich.console import Console
from sweep_helpers import child_runs

from sweeps import cli, plan_file, registry
from sweeps.errors import SpecError
from sweeps.plan import Plan, make_plan, varying_keys
from sweeps.runner import launch
from sweeps.spec import parse
from sweeps.store import SweepStore
from sweeps.tracking import embedded_uri
from sweeps.workload import GroupResult, TrialResult

PLANTED = "hf_PLANTEDsecret1234567890"
OTHER = "hf_OTHERplanted0987654321"
FIXED = {"task": "passkey", "context_length": 200, "samples": 1}
METHODS = [{"technique": "baseline"}, {"technique": "streamingllm", "cache_size": 32}]


def sweeps(monkeypatch, *args: str) -> tuple[int, str]:
    """``sweeps ARGS`` in this process, as the console script runs it; returns the exit code and all output."""
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=400))
    monkeypatch.setattr(cli, "err_console", Console(file=out, width=400))
    monkeypatch.setattr(sys, "argv", ["sweeps", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code, out.getvalue()


@pytest.fixture
def secret_sweep(sweep_file, tiny_model):
    def make(name="sec", fixed=None, grid=None):
        return sweep_file(
            name=name,
            experiment=name,
            max_concurrent=1,
            fixed={"model": str(tiny_model), **FIXED, **(fixed or {})},
            grid=grid if grid is not None else {"method": [dict(m) for m in METHODS]},
        )

    return make


@pytest.mark.parametrize(
    "grid, overrides",
    [
        ({"method": [{"technique": "baseline", "hf_token": PLANTED}, METHODS[1]]}, []),
        ({"method": METHODS}, [f"fixed.hf_token={PLANTED}", f"grid.method[1].hf_token={OTHER}"]),
        ({"method": METHODS, "hf_token": [PLANTED, OTHER]}, []),
    ],
    ids=["one-sub-grid", "set-and-sub-grid", "axis"],
)
def test_a_secret_that_differs_between_trials_is_refused(monkeypatch, secret_sweep, grid, overrides):
    path = secret_sweep(grid=grid)
    sets = [arg for o in overrides for arg in ("--set", o)]
    code, out = sweeps(monkeypatch, "plan", str(path), *sets)
    assert code == 2, out
    assert "hf_token" in out and "differs between trials" in out and "fixed" in out and "HF_TOKEN" in out
    assert PLANTED not in out and OTHER not in out
    assert not (path.parent / "runs" / "sec").exists()  # nothing written


def test_run_names_and_plan_output_never_show_a_secret(monkeypatch, secret_sweep):
    path = secret_sweep(fixed={"hf_token": PLANTED})
    code, out = sweeps(monkeypatch, "plan", str(path))
    assert code == 0 and "baseline" in out and PLANTED not in out and "hf_token" not in out
    plan, _ = plan_file(path, [])
    # Trials that differ only in a secret (make_plan refuses them; a plan built by hand must not leak either)
    other = replace(plan.trials[0], config={**plan.trials[0].config, "hf_token": OTHER}, key="0" * 10)
    trials = [*plan.trials, other]
    assert "hf_token" not in varying_keys(trials)
    by_hand = Plan(plan.spec, plan.workload, trials, varying_keys(trials))
    names = [by_hand.run_name(t) for t in trials]
    assert names[0] == "baseline" and not any(PLANTED in n or OTHER in n for n in names)
    assert PLANTED not in str(by_hand.records()) and OTHER not in str(by_hand.records())


@pytest.mark.parametrize(
    "fixed, overrides, path",
    [
        ({"hf_token": [PLANTED]}, [], "fixed.hf_token"),
        ({"hf_token": {"value": PLANTED}}, [], "fixed.hf_token"),
        ({"samples": {"api_key": PLANTED}}, [], "fixed.samples"),
        ({}, [f"fixed.hf_token=[{PLANTED}"], "fixed.hf_token"),
        ({}, [f"fixed.hf_token=[{PLANTED}]"], "fixed.hf_token"),
    ],
    ids=["list", "mapping", "inside-another-value", "set-bad-yaml", "set-list"],
)
def test_validation_errors_never_echo_a_secret(monkeypatch, secret_sweep, fixed, overrides, path):
    file = secret_sweep(fixed=fixed)
    code, out = sweeps(monkeypatch, "plan", str(file), *[arg for o in overrides for arg in ("--set", o)])
    assert code == 2 and path in out and "Traceback" not in out, out
    assert PLANTED not in out and "hf_PLANTED" not in out
    if not overrides:  # the errors themselves, not just their rendering, hold no secret
        raw = yaml.safe_load(file.read_text())
        with pytest.raises(SpecError) as caught:
            make_plan(parse(raw))
        assert caught.value.errors and "hf_PLANTED" not in repr(caught.value.errors)


def test_stored_sweep_file_is_redacted_and_resume_takes_the_secret_from_the_environment(monkeypatch, secret_sweep):
    path = secret_sweep(fixed={"hf_token": PLANTED})
    plan, raw = plan_file(path, [])
    store = SweepStore(plan.spec.sweep_dir)
    store.save_spec(raw)  # what launch stores
    assert PLANTED not in store.spec_path().read_text() and "hf_token: '***'" in store.spec_path().read_text()

    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, out = sweeps(monkeypatch, "resume", "sec", "--storage", str(plan.spec.storage_path))
    assert code == 2 and "fixed.hf_token" in out and "HF_TOKEN" in out, out
    assert sorted(p.name for p in store.root.iterdir()) == ["sweep.yaml"]  # refused before any work

    monkeypatch.setenv("HF_TOKEN", OTHER)
    resumed, raw_again = plan_file(store.spec_path(), [])  # what resume loads
    assert {t.key for t in resumed.trials} == {t.key for t in plan.trials}
    assert all(t.config["hf_token"] == OTHER for t in resumed.trials)
    store.save_spec(raw_again)
    assert OTHER not in store.spec_path().read_text()


def test_redacted_secrets_come_from_the_environment_variable_named_like_their_key(monkeypatch):
    from sweeps.secrets import fill_from_env, redact

    raw = {"fixed": {"hf_token": "***", "endpoint": {"api_key": "***"}}, "grid": {"m": [{"db_password": "***"}]}}
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    monkeypatch.setenv("API_KEY", OTHER)
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    assert fill_from_env(raw) == [("grid.m[0].db_password", "DB_PASSWORD")]
    assert raw["fixed"] == {"hf_token": PLANTED, "endpoint": {"api_key": OTHER}}
    assert redact({"hf_token": None, "max_new_tokens": 8}) == {"hf_token": None, "max_new_tokens": 8}


def test_a_trial_error_that_quotes_its_secret_is_recorded_without_it(tmp_path):
    from sweeps.trial import TrialRecorder

    context = {"sweep": "s", "key": "k", "workload": "evaluate", "trial_dir": str(tmp_path / "s" / "k")}
    recorder = TrialRecorder({"params": {"hf_token": PLANTED, "samples": 1}, "context": context})
    recorder.begin()
    record = recorder.fail(RuntimeError(f"401: the token {PLANTED} was refused"))
    assert record["error"]["message"] == "401: the token *** was refused"
    assert not _files_holding(tmp_path, PLANTED)


class _ProbeTrainable(tune.Trainable):
    """Returns, as each member's result, a fingerprint of the token it was given (never the token)."""

    def setup(self, config):
        self.members = config["members"]

    def reset_config(self, new_config):
        self.members = new_config["members"]
        return True

    def step(self):
        return GroupResult(
            results={
                m["context"]["key"]: TrialResult({}, info={"token_sha256": _fingerprint(m["params"].get("hf_token"))})
                for m in self.members
            }
        )


def _fingerprint(token) -> str:
    return hashlib.sha256(str(token).encode()).hexdigest()


class _ProbeWorkload:
    """The evaluate workload's schemas and names, with a trainable that only fingerprints its token."""

    def __init__(self, trainable, reuse: bool):
        self._trainable, self.reuse_actors = trainable, reuse

    def __getattr__(self, name):
        return getattr(registry.get("evaluate"), name)

    def trainable(self):
        return self._trainable


def test_the_trial_receives_the_secret_although_tune_never_holds_it(ray_session, secret_sweep):
    """The evaluate workload's path: a class trainable whose actor Tune reuses for the next trial."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import tests/
    path = secret_sweep(name="probe", fixed={"hf_token": PLANTED})
    plan, raw = plan_file(path, [])
    plan.workload = _ProbeWorkload(_ProbeTrainable, reuse=True)
    summary = launch(plan, raw, console=Console(file=io.StringIO()))
    store = SweepStore(plan.spec.sweep_dir)
    assert summary.counts["done"] == 2
    assert all(store.result(t.key)["info"]["token_sha256"] == _fingerprint(PLANTED) for t in plan.trials)
    assert not _files_holding(plan.spec.storage_path, PLANTED)


def test_a_function_trainable_gets_its_secret_back_from_the_object_store(ray_session):
    """The fine-tuning workloads' path: a function trainable."""
    from sweeps.trial_secrets import with_secrets

    seen = []
    trainable = with_secrets(lambda config: seen.append(config) or "ran", {"k": {"hf_token": PLANTED}})
    member = {"params": {"hf_token": "***", "samples": 1}, "context": {"key": "k"}}
    tune_config = {"trial": {"members": [member]}}
    assert trainable(tune_config) == "ran"
    assert seen[0]["trial"]["members"][0]["params"] == {"hf_token": PLANTED, "samples": 1}
    assert member["params"]["hf_token"] == "***"  # Tune's own copy stays redacted


def test_with_secrets_leaves_a_sweep_without_secrets_alone():
    from sweeps.trial_secrets import with_secrets

    assert with_secrets(_fingerprint, {}) is _fingerprint


def _files_holding(root: Path, value: str) -> list[str]:
    needle = value.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _mlflow_holding(storage: Path, value: str) -> list[str]:
    """Run names, params and tags (of every run in every experiment) that contain ``value``."""
    client = MlflowClient(embedded_uri(storage))
    found = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=1000):
            fields = {"name": run.info.run_name, **run.data.params, **run.data.tags}
            found += [f"{run.info.run_id} {k}" for k, v in fields.items() if value in f"{k}={v}"]
    return found


def test_a_real_sweep_leaks_a_planted_token_nowhere(ray_session, monkeypatch, capfd, secret_sweep):
    """The file plants one token and --set replaces it with another; a resume then takes the first from HF_TOKEN."""
    path = secret_sweep(name="leak", fixed={"hf_token": PLANTED})
    code, out = sweeps(monkeypatch, "launch", str(path), "--set", f"fixed.hf_token={OTHER}")
    assert code == 0, out
    outputs = [out]
    plan, _ = plan_file(path, [])
    storage = plan.spec.storage_path
    kids = child_runs(storage, "leak")
    assert {r.info.run_name for r in kids} == {"baseline", "streamingllm · c32 s4"}

    # resume after a trial's result was lost: the stored file is redacted, the token comes from HF_TOKEN
    store = SweepStore(plan.spec.sweep_dir)
    (store.trial_dir(plan.trials[0].key) / "result.json").unlink()
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    code, out = sweeps(monkeypatch, "resume", "leak", "--storage", str(storage))
    assert code == 0 and "ran 1" in out, out
    assert len(child_runs(storage, "leak")) == 2
    captured = capfd.readouterr()
    outputs += [out, captured.out, captured.err]

    assert (store.root / "_tune").is_dir() and (storage / "mlflow.db").is_file() and (storage / "mlartifacts").is_dir()
    session_logs = Path(ray_session._private.worker.global_worker.node.get_session_dir_path()) / "logs"
    for token in (PLANTED, OTHER):
        assert not any(token in out for out in outputs)
        assert not _files_holding(storage, token)
        assert not _mlflow_holding(storage, token)
        assert not _files_holding(session_logs, token)
