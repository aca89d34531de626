"""A hung, dead or unreachable MLflow server costs no trial time (a real `mlflow server` process).

The same sweep runs undisturbed, then with the server hung (SIGSTOP) mid-sweep, then with the
server killed mid-sweep and started again on the same port and store: the disturbed sweeps take
about as long as the undisturbed one, and MLflow ends with exactly one child run per trial with
all its metrics. A server that does not answer at launch is exit code 2 within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import pytest
from mlflow import MlflowClient
from mlflow_server import MlflowServer, free_port
from sweep_helpers import finished_label, run_file, sweeps_cli

from sweeps.errors import SpecError
from sweeps.mirror import EXIT_STALL_S
from sweeps.store import SweepStore

#: how long the server is hung or dead at most; the sweep must outlast it (see _outage)
OUTAGE_S = 40.0
#: after its first result (Ray's start before it varies by a minute on a busy machine), the disturbed
#: sweep may take this much longer than the undisturbed one (today's stall: the whole outage)
SLACK_S = 15.0
#: a launch against a server that does not answer must be refused within this
REPORT_S = 20.0
#: the same through the CLI, whose start alone takes 15 s on a busy 2-core machine (today: minutes)
CLI_HANG_S = 90.0
#: cache sizes of the StreamingLLM trials: with the baseline, the sweep's trials
CACHE_SIZES = [16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 72]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@dataclass
class Calm:
    """The undisturbed sweep: its wall time, and how much of it came after the first trial's result."""

    seconds: float
    after_first: float
    span: float


@pytest.fixture(scope="module")
def calm(ray_session, tiny_model, tmp_path_factory, server) -> Calm:
    folder = tmp_path_factory.mktemp("calm")
    path = _sweep(folder, "calm", tiny_model, server.url)
    first = _on_first_result(folder, lambda: None)
    started = time.monotonic()
    plan, summary, out = run_file(path)
    ended = time.monotonic()
    assert summary.counts["done"] == len(plan.trials), out
    _assert_mirrored(server.url, "calm", plan, out)
    return Calm(ended - started, ended - first.result(timeout=0), _span(folder)[0])


def _span(folder) -> tuple[float, float]:
    """Seconds from the first trial's result to the last one's, and the time (epoch) of the last."""
    stamps = sorted(path.stat().st_mtime for path in (folder / "runs").glob("*/*/result.json"))
    return stamps[-1] - stamps[0], stamps[-1]


def _on_first_result(folder, action) -> Future:
    """Run ``action`` as soon as the sweep under ``folder`` stored its first result (trials are under way)."""
    done: Future = Future()

    def watch() -> None:
        deadline = time.monotonic() + 600
        while not any((folder / "runs").glob("*/*/result.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        at = time.monotonic()
        try:
            action()
        finally:
            done.set_result(at)

    threading.Thread(target=watch, daemon=True).start()
    return done


def _sweep(folder, name: str, model, tracking: str):
    from conftest import write_sweep

    return write_sweep(
        folder / f"{name}.yaml",
        name=name,
        workload="evaluate",
        experiment=name,
        storage=str(folder / "runs"),
        tracking=tracking,
        resources={"cpu": 1, "gpu": 0},
        max_concurrent=1,
        # one trial per configuration: results arrive one by one through the sweep, as the timings need
        share_prefill=False,
        fixed={"model": str(model), "task": "passkey", "context_length": 600, "samples": 64},
        grid={"method": [{"technique": "baseline"}, {"technique": "streamingllm", "cache_size": CACHE_SIZES}]},
    )


def _assert_mirrored(url: str, experiment: str, plan, out: str) -> None:
    """Exactly one child run per trial, finished, with every metric of its result; the parent closed."""
    client = MlflowClient(url)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", out
    children = [r for r in runs if r is not parents[0]]
    keys = [r.data.tags.get("sweeps.trial_key") for r in children]
    assert sorted(keys) == sorted(t.key for t in plan.trials), f"not exactly one child run per trial\n{out}"
    store = SweepStore(plan.spec.sweep_dir)
    for run in children:
        record = store.result(run.data.tags["sweeps.trial_key"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["sweeps.status"] == finished_label(record) and run.data.tags.get("sweeps.synced")
        assert record["metrics"] and set(record["metrics"]) <= set(run.data.metrics)
        # final-only metrics; a progress metric's latest value in MLflow may be a step of a lost progress report
        for name in ("score", "kv_cache_mb"):
            assert run.data.metrics[name] == pytest.approx(record["metrics"][name])


def _outage(calm: Calm) -> float:
    """As long as OUTAGE_S, but over well before the sweep would end, so its backlog is seen mirrored."""
    outage = min(OUTAGE_S, calm.after_first - 10)
    assert outage >= 20, f"the sweep ({calm.seconds:.0f} s) is too short to show an outage: add trials"
    return outage


def _disturbed(server: MlflowServer, folder, name: str, tiny_model, outage: float, begin, end) -> tuple:
    """Run the sweep; ``begin`` disturbs the server once the first trial has a result, ``end`` ``outage`` s later."""
    path = _sweep(folder, name, tiny_model, server.url)

    def disturb() -> None:
        begin()
        time.sleep(outage)
        end()

    disturbance = _on_first_result(folder, disturb)
    try:
        plan, summary, out = run_file(path)
    finally:
        ended = time.monotonic()
        first = disturbance.result(timeout=600)
        server.wake()
    return plan, summary, out, ended - first


def test_a_hung_server_costs_no_trial_time(server, calm, tiny_model, tmp_path):
    outage = _outage(calm)
    plan, summary, out, seconds = _disturbed(server, tmp_path, "hung", tiny_model, outage, server.hang, server.wake)
    assert summary.counts["done"] == len(plan.trials)
    assert seconds < calm.after_first + SLACK_S, (
        f"after its first result the sweep took {seconds:.0f} s with the server hung for {outage:.0f} s, "
        f"{calm.after_first:.0f} s undisturbed"
    )
    assert "does not answer" in out and "answers again" in out
    _assert_mirrored(server.url, "hung", plan, out)


def test_a_dead_server_costs_no_trial_time(server, calm, tiny_model, tmp_path):
    """Killed once trials are under way, started again on the same port and store after the launch.

    (Started during the sweep, the server's own start takes both CPUs of a small machine for a
    minute, which would slow the trials for reasons of its own.) The launcher leaves after a
    bounded wait; the next launch runs nothing and mirrors every result, one run per trial.
    """
    plan, summary, out, seconds = _disturbed(server, tmp_path, "dead", tiny_model, 0, server.kill, lambda: None)
    assert summary.counts["done"] == len(plan.trials)
    span, last = _span(tmp_path)
    assert span < calm.span + SLACK_S, (
        f"trials took {span:.0f} s from first to last result with the server dead, {calm.span:.0f} s undisturbed"
    )
    assert time.time() - last < EXIT_STALL_S + SLACK_S, "the launcher waited too long for a dead server at exit"
    assert "does not answer" in out and "left for the next launch to mirror" in out
    server.start()
    _, again, more = run_file(tmp_path / "dead.yaml")
    assert again.ran == 0
    _assert_mirrored(server.url, "dead", plan, out + more)


def test_a_server_killed_and_started_again_mid_sweep_gets_the_backlog_in_the_same_launch(
    server, calm, tiny_model, tmp_path
):
    """Killed once trials are under way and started again while they run: the launch itself mirrors
    everything (nothing is left for a next launch), one run per trial. The trials' time is asserted by
    the two tests above: here the server's own restart takes the machine's CPUs for a while."""

    def restart() -> None:
        server.start(wait=False)

    plan, summary, out, _ = _disturbed(server, tmp_path, "restarted", tiny_model, 5.0, server.kill, restart)
    server.wait_until_healthy()
    assert summary.counts["done"] == len(plan.trials)
    assert "does not answer" in out and "answers again" in out, out
    assert "left for the next launch" not in out, out
    _assert_mirrored(server.url, "restarted", plan, out)


@pytest.mark.parametrize("case", ["nobody listens", "server hung"])
def test_a_server_that_does_not_answer_at_launch_is_reported_within_seconds(case, server, tiny_model, tmp_path):
    url = f"http://127.0.0.1:{free_port()}" if case == "nobody listens" else server.url
    path = _sweep(tmp_path, "unreachable", tiny_model, url)
    if case == "server hung":
        server.hang()
    started = time.monotonic()
    try:
        with pytest.raises(SpecError) as raised:
            run_file(path)
    finally:
        server.wake()
    seconds = time.monotonic() - started
    assert seconds < REPORT_S, f"took {seconds:.0f} s to report"
    (problem,) = raised.value.errors
    assert problem.path == "tracking" and url in problem.message and "--set tracking=null" in problem.render()
    assert not (tmp_path / "runs").exists(), "a launch that could not track wrote to storage"


def test_sweeps_launch_exits_2_when_nobody_listens_at_the_tracking_url(tiny_model, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    path = _sweep(tmp_path, "unreachable", tiny_model, url)
    proc = sweeps_cli("launch", str(path))
    try:
        out, _ = proc.communicate(timeout=CLI_HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
    assert proc.returncode == 2, out[-2000:]
    assert f"tracking: no MLflow server answers at {url}" in out and "Traceback" not in out
    assert not (tmp_path / "runs").exists(), "a launch that could not track wrote to storage"
