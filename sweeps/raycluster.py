"""Which Ray a launch runs on: a local Ray of its own, or a cluster asked for by address.

Without ``--address`` (or ``RAY_ADDRESS``) the launcher always starts its own Ray, bound to
127.0.0.1: a bare ``ray.init()`` would join whatever cluster ``ray start`` last created on the
machine (still running, or dead and remembered in Ray's temp folder) and then refuse the CPU
count it is given. Joining is explicit (``--address auto`` or an address), and an address that
does not answer, or answers only to a token the launcher lacks, is bad input reported within
seconds: ``ray.init`` itself retries for minutes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from sweeps.capacity import Demand, Node, cluster_nodes, growth_limit, problems, trial_demand
from sweeps.errors import FieldError, SpecError
from sweeps.plan import Plan, Trial

#: Python processes a local sweep may start at once. Ray expects about one per CPU and warns
#: at four times that ("N PYTHON worker processes have been started ..."), but a training
#: trial is by design several processes that hold no CPU (its driver, the Ray Train
#: controller and its helpers) beside its workers: two concurrent trials on 2 CPUs already
#: make nine. Ray's expectation is raised to match, which silences that warning at its source.
LOCAL_PROCESSES = 8
#: object store of a local Ray: trials pass configs and metrics, not tensors
LOCAL_OBJECT_STORE = 512 * 1024**2
#: how long an address may take to answer before it is reported as unreachable
PROBE_SECONDS = 5.0
LOOPBACK = "127.0.0.1"
#: Ray binds to the machine's outward address unless this says the cluster is one machine
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_AUTH_HINT = (
    "set RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN (or ~/.ray/auth_token), "
    "as the cluster's own nodes have it"
)


def local_cpus() -> int:
    """CPUs this process may use (cgroup/affinity aware), so a local Ray never oversubscribes."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_gpus() -> int:
    """CUDA devices this process sees (``CUDA_VISIBLE_DEVICES`` respected); the local Ray gets exactly these."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_memory() -> float:
    """Bytes a local Ray offers as its ``memory`` resource (what is free, less its object store)."""
    import psutil

    return max(0.0, float(psutil.virtual_memory().available) - LOCAL_OBJECT_STORE)


def requested_address(address: str | None) -> tuple[str | None, str]:
    """The address to join (``--address``, else ``RAY_ADDRESS``, else None: a local Ray) and where it came from."""
    if address:
        return (None, "") if address == "local" else (address, "--address")
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return (env, "RAY_ADDRESS") if env and env != "local" else (None, "")


def _bad_address(source: str, address: str, message: str, hint: str) -> SpecError:
    return SpecError([FieldError(source, message, address, hint=hint)])


def check_address(address: str, source: str = "--address", seconds: float = PROBE_SECONDS) -> None:
    """Raise a SpecError within ``seconds`` unless a Ray cluster that accepts this launcher answers at ``address``."""
    from ray._private import services

    retry = f"start the cluster (`ray start --head`), fix {source}, or leave it out to run on a local Ray of its own"
    if address == "auto":
        # as ray.init does for "auto": a local cluster's own token counts
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        target = services.canonicalize_bootstrap_address(address.removeprefix("ray://"))
    except ConnectionError:
        raise _bad_address(
            source, address, "'auto': no Ray cluster started with `ray start` runs here", retry
        ) from None
    except ValueError:
        raise _bad_address(
            source, address, f"{address!r} is not an address", "write host:port, e.g. 10.0.0.1:6379, or auto"
        ) from None
    # Ray replaces 127.0.0.1 with the machine's outward address, and auto with the last `ray start`'s
    shown = address if target in (address, address.removeprefix("ray://")) else f"{address} ({target})"
    if address.startswith("ray://"):
        _answers_tcp(target, shown, source, seconds, retry)
        return
    _answers_gcs(target, shown, source, seconds, retry)


def _answers_tcp(target: str, address: str, source: str, seconds: float, retry: str) -> None:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise _bad_address(source, address, f"nothing answers at {address} ({exc.strerror or exc})", retry) from None


def _answers_gcs(target: str, address: str, source: str, seconds: float, retry: str) -> None:
    """Ask the cluster's control service for its id, with the token ray.init would send."""
    import grpc
    from ray._private.authentication.authentication_utils import is_token_auth_enabled
    from ray._private.grpc_utils import init_grpc_channel
    from ray._raylet import AuthenticationTokenLoader
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    if is_token_auth_enabled() and not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise _bad_address(source, address, "RAY_AUTH_MODE=token is set, but no token was found", _AUTH_HINT)
    channel = init_grpc_channel(target)
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=seconds
        )
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            have = "the launcher's token is not the cluster's" if is_token_auth_enabled() else "the launcher has none"
            raise _bad_address(
                source, address, f"the Ray cluster at {address} requires its token and {have}", _AUTH_HINT
            ) from None
        reason = "no answer" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "nothing listens there"
        if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            reason = f"{code.name.lower()}: {exc.details()}"[:200]
        raise _bad_address(
            source, address, f"no Ray cluster answers at {address} within {seconds:g}s ({reason})", retry
        ) from None
    finally:
        channel.close()


@contextmanager
def single_machine() -> Iterator[None]:
    """Make the Ray started inside bind to 127.0.0.1 instead of the machine's outward address.

    Ray reads the switch when it is imported and its processes read it from their environment,
    so both are set while Ray starts and put back after: a later ``ray start`` or join from this
    process (or its children) is not affected.
    """
    from ray._private import ray_constants

    before_env, before_flag = os.environ.get(_SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before_flag
        if before_env is None:
            os.environ.pop(_SINGLE_MACHINE, None)
        else:
            os.environ[_SINGLE_MACHINE] = before_env


def start_local(verbose: bool = False) -> None:
    """A new Ray of this process's own on 127.0.0.1, sized to what this process may use."""
    import ray

    from sweeps.runner import quiet

    cpus = local_cpus()
    # Ray announces on every local start that it enabled token authentication by default
    # (which it keeps doing); the notice asks nothing of the user.
    with single_machine(), quiet(("ray._private.authentication.authentication_token_setup",)):
        ray.init(
            address="local",  # never the cluster `ray start` left behind
            _node_ip_address=LOOPBACK,
            num_cpus=cpus,
            num_gpus=local_gpus(),
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            _system_config={"worker_maximum_startup_concurrency": max(cpus, LOCAL_PROCESSES)},
            **_common(verbose),
        )


def join(address: str, source: str = "--address", verbose: bool = False) -> None:
    """Join the cluster at ``address`` after it answered; a SpecError within seconds otherwise."""
    import ray

    check_address(address, source)
    ray.init(address=address, **_common(verbose))


def _common(verbose: bool) -> dict[str, Any]:
    return {"logging_level": logging.WARNING, "log_to_driver": verbose}


def connect_ray(address: str | None, verbose: bool = False) -> bool:
    """Join ``address``/``RAY_ADDRESS``, or start a local Ray of this process's own.

    Returns whether this call started or joined Ray (and so should shut it down).
    """
    import ray

    if ray.is_initialized():
        return False
    target, source = requested_address(address)
    if target:
        join(target, source, verbose)
    else:
        start_local(verbose)
    return True


def local_node() -> Node:
    """This machine as the one node of a local Ray: what the launcher may use of it."""
    return Node(cpu=float(local_cpus()), gpu=float(local_gpus()), memory=local_memory())


def impossible(plan: Plan, trials: Sequence[Trial], nodes: Sequence[Node], where: str) -> list[FieldError]:
    """One error per distinct trial demand that ``nodes`` could never hold."""
    cpu, gpu = plan.spec.resources.cpu, plan.spec.resources.gpu
    by_demand: dict[Demand, list[Trial]] = {}
    for trial in trials:
        by_demand.setdefault(trial_demand(plan.workload, trial.config, cpu, gpu), []).append(trial)
    errors: list[FieldError] = []
    for demand, members in by_demand.items():
        params = members[0].config

        def rebuild(c: float, g: float, n: int, params: dict = params, demand: Demand = demand) -> Demand:
            changed = {**params, demand.workers_param: n} if demand.workers_param else params
            return trial_demand(plan.workload, changed, c, g)

        errors += problems(demand, nodes, where, cpu, gpu, rebuild, len(members), len(trials))
    return errors


@dataclass
class LaunchRay:
    """The Ray a launch will run on, chosen (and checked) before anything is written."""

    console: Console
    verbose: bool = False
    #: the cluster to join, and where it was given (None: a local Ray of the launcher's own)
    address: str | None = None
    source: str = ""
    #: whether this launch already started or joined Ray
    joined: bool = False

    def start(self) -> bool:
        """Start the local Ray, or join the cluster, unless done; returns whether the launch should shut Ray down."""
        import ray

        if self.joined:
            return True
        if ray.is_initialized():  # a Ray this process already runs: not the launch's to shut down
            return False
        if self.address:
            join(self.address, self.source, self.verbose)
        else:
            start_local(self.verbose)
            cpus, gpus = ray_totals()
            where = ", ".join(sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}))
            self.console.print(
                f"Ray: started a local Ray of its own on {where} ({cpus:g} CPUs, {gpus:g} GPUs); "
                "--address joins a cluster instead"
            )
        self.joined = True
        return True


def ray_totals() -> tuple[float, float]:
    import ray

    total = ray.cluster_resources()
    return total.get("CPU", 0.0), total.get("GPU", 0.0)


def prepare_ray(
    plan: Plan, trials: Sequence[Trial], address: str | None, console: Console, verbose: bool = False
) -> LaunchRay:
    """Check every trial against the Ray it will run on; join a cluster now, start a local Ray later.

    Raises SpecError (exit code 2) for an address that does not answer or refuses the launcher,
    and for a trial that can never be placed: on a local Ray before it starts; on a cluster that
    cannot grow, against its nodes. A cluster with an autoscaler may still add nodes up to what
    its configuration allows: a trial within that limit is a warning with the numbers.
    """
    import ray

    target, source = requested_address(address)
    chosen = LaunchRay(console, verbose, target, source)
    if not trials:
        return chosen
    if ray.is_initialized():  # a Ray this process already runs (tests, benchmarks, notebooks)
        errors = impossible(plan, trials, cluster_nodes(), "this Ray")
        if errors:
            raise SpecError(errors)
        return chosen
    if not target:
        errors = impossible(plan, trials, [local_node()], "the local Ray")
        if errors:
            raise SpecError(errors)
        return chosen
    chosen.start()
    nodes = cluster_nodes()
    errors = impossible(plan, trials, nodes, "the cluster")
    limit = growth_limit() if errors else None
    if errors and (limit is None or impossible(plan, trials, [limit], "its autoscaler's largest size")):
        ray.shutdown()
        raise SpecError(errors)
    cpus, gpus = ray_totals()
    console.print(f"Ray: joined the cluster at {target} ({len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs)")
    for error in errors:
        console.print(f"[yellow]warning:[/] {escape(error.render())}; the cluster's autoscaler may add nodes")
    return chosen
