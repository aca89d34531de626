"""Which Ray `sweeps launch` runs on: its own local one unless a cluster is asked for, and a clear
exit 2 within seconds when the asked-for cluster does not answer or refuses the launcher.

A real `ray start --head --block` process (its own session and temp folder, token authentication
on, stopped by its process group) stands for the cluster a researcher left running — or killed,
leaving its address behind in Ray's temp folder, where a bare `ray.init()` would still look.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_run import free_port, run_cli
from conftest import write_sweep

#: how long the launcher may take from its first line to its exit 2 (imports come before the first line)
PROMPT_SECONDS = 30


@pytest.fixture(scope="module")
def ray_tmp():
    """Ray's temp folder for this module's processes (short: Ray's socket paths have a length limit)."""
    path = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture(scope="module")
def head(ray_tmp):
    """A `ray start --head` cluster on 127.0.0.1 with token authentication; yields (address, token, process)."""
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1"]
    command += ["--include-dashboard", "false", "--disable-usage-stats", "--block"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not (ray_tmp / "ray" / "ray_current_cluster").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
        time.sleep(0.5)
    yield f"127.0.0.1:{port}", token, process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def launcher_env(ray_tmp: Path, **extra: str) -> dict[str, str]:
    """The launcher's environment: no RAY_ADDRESS and no token unless given, Ray's temp folder shared with the head."""
    drop = {"RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "RAY_TMPDIR": str(ray_tmp), **extra}


def evaluate_sweep(tmp_path: Path, tiny_model: Path, name: str) -> Path:
    return write_sweep(
        tmp_path / f"{name}.yaml",
        name=name,
        workload="evaluate",
        storage=str(tmp_path / "runs"),
        resources={"cpu": 1, "gpu": 0},
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 120, "samples": 1},
    )


def test_an_address_nobody_answers_is_refused_within_seconds(tmp_path, tiny_model, ray_tmp):
    address = f"127.0.0.1:{free_port()}"
    path = evaluate_sweep(tmp_path, tiny_model, "nobody")
    ran = run_cli("launch", str(path), "--address", address, env=launcher_env(ray_tmp), timeout=300)
    out = ran.out
    assert ran.code == 2, out
    assert f"no Ray cluster answers at {address}" in out and "ray start --head" in out, out
    assert "Traceback" not in out
    assert ran.after_first_line < PROMPT_SECONDS, f"{ran.after_first_line:.0f}s from the first line to the exit"
    assert not (tmp_path / "runs").exists(), "nothing may be written to storage"


def test_an_address_given_in_ray_address_that_nobody_answers_names_it(tmp_path, tiny_model, ray_tmp):
    address = f"127.0.0.1:{free_port()}"
    path = evaluate_sweep(tmp_path, tiny_model, "nobody-env")
    ran = run_cli("launch", str(path), env=launcher_env(ray_tmp, RAY_ADDRESS=address), timeout=300)
    out = ran.out
    assert ran.code == 2 and f"RAY_ADDRESS: no Ray cluster answers at {address}" in out, out


def test_a_cluster_that_needs_a_token_the_launcher_lacks_is_refused_within_seconds(tmp_path, tiny_model, ray_tmp, head):
    address, token, _ = head
    path = evaluate_sweep(tmp_path, tiny_model, "no-token")
    ran = run_cli("launch", str(path), "--address", address, env=launcher_env(ray_tmp), timeout=300)
    out = ran.out
    assert ran.code == 2, out
    # Ray itself dials the machine's outward address for 127.0.0.1; the message shows both
    assert f"the Ray cluster at {address}" in out and "requires its token and the launcher has none" in out, out
    assert "RAY_AUTH_MODE=token" in out and "RAY_AUTH_TOKEN" in out, out
    assert ran.after_first_line < PROMPT_SECONDS, f"{ran.after_first_line:.0f}s from the first line to the exit"

    wrong = launcher_env(ray_tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    ran = run_cli("launch", str(path), "--address", address, env=wrong, timeout=300)
    out = ran.out
    assert ran.code == 2 and "the launcher's token is not the cluster's" in out, out
    assert token not in out and wrong["RAY_AUTH_TOKEN"] not in out
    assert not (tmp_path / "runs").exists()

    # with the cluster's token the address answers (the check lets the real join through)
    right = launcher_env(ray_tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    probe = "from sweeps.raycluster import check_address; import sys; check_address(sys.argv[1]); print('answers')"
    done = subprocess.run([sys.executable, "-c", probe, address], env=right, capture_output=True, text=True)
    assert done.returncode == 0 and "answers" in done.stdout, done.stdout + done.stderr


def test_without_address_a_launch_starts_its_own_ray_beside_a_running_or_dead_ray_start(
    tmp_path, tiny_model, ray_tmp, head
):
    """A plain ray.init() would join the head (and refuse num_cpus); the launcher starts its own Ray on 127.0.0.1."""
    _, _, process = head
    env = launcher_env(ray_tmp)
    for name in ("beside-running", "beside-dead"):
        path = evaluate_sweep(tmp_path, tiny_model, name)
        ran = run_cli("launch", str(path), env=env)
        out = ran.out
        assert ran.code == 0, out
        assert "Ray: started a local Ray of its own on 127.0.0.1" in out, out
        assert "1 done" in out, out
        if name == "beside-running":
            assert process.poll() is None, "the launcher must leave the head running"
            os.killpg(process.pid, signal.SIGKILL)  # left behind in Ray's temp folder
            process.wait()
            assert (ray_tmp / "ray" / "ray_current_cluster").is_file()
