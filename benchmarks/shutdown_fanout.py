"""`shutdown_fanout`: `POST /api/shutdown` on devhost against the ARM stand-in (every instance takes 2 s to stop),
followed to Completed, at several fleet sizes; baseline: a sequential stop-and-wait loop with the same
`shared.compute` functions, measured on a small fleet and extrapolated, and the theoretical N x 2 s."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import requests

from benchmarks.core import Goal, Plot, Result, Series
from benchmarks.hosts import Context, app_functions, devhost
from devhost.standins.arm import ArmStandin, generate_fleet, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import LocalTls, make_local_tls
from tests.devhost_runner import TERMINAL, RunningHost

log = logging.getLogger(__name__)

WORKSPACES = 5
TRANSITION_SECONDS = 2.0
PAGE_SIZE = 50
GOAL_SIZE = 500
GOAL_SECONDS = 15.0


class Fleet:
    """One ARM stand-in for the whole benchmark, cut down to each run's size and set back to Running before it.

    The same server stays up: MLClient keeps its connections alive, so a new server on the same port would not
    be seen by workers still talking to the old one. Sizes therefore go from largest to smallest (instances can
    be removed, not added).
    """

    def __init__(self, tls: LocalTls, identity: IdentityStandin, largest: int) -> None:
        self.per_workspace = largest // WORKSPACES
        self.fleet = generate_fleet(WORKSPACES, self.per_workspace)
        self.arm = ArmStandin(
            self.fleet,
            tls,
            transition_seconds=TRANSITION_SECONDS,
            page_size=PAGE_SIZE,
            token_validator=identity.is_valid,
        )
        self.endpoint = self.arm.start() + "/"

    def prepare(self, size: int) -> ArmStandin:
        """Exactly `size` instances (size / WORKSPACES per workspace), all Running."""
        keep = size // WORKSPACES
        if keep > self.per_workspace:
            raise ValueError(f"the fleet has {self.per_workspace} instances per workspace; cannot grow to {keep}")
        for (workspace, name), _ in self.arm.states().items():
            if int(name.rsplit("-", 1)[1]) >= keep:
                self.arm.remove(workspace, name)
            else:
                self.arm.set_state(workspace, name, "Running")
        self.per_workspace = keep
        return self.arm

    def close(self) -> None:
        self.arm.stop()


def app_settings(fleet: Fleet, tls: LocalTls, identity: IdentityStandin) -> dict[str, str]:
    return {
        "AML_WORKSPACES": ",".join(workspace_keys(fleet.fleet)),
        "AML_ARM_ENDPOINT": fleet.endpoint,
        **identity.env(),
        "REQUESTS_CA_BUNDLE": str(tls.ca_bundle),
        "SHUTDOWN_POLL_SECONDS": "1",
        "AML_POLLING_INTERVAL_SECONDS": "1",
    }


def shutdown_once(
    host: RunningHost, arm: ArmStandin, expected: int, body: dict[str, Any] | None = None, timeout: float = 300.0
) -> dict[str, Any]:
    """Wall time of POST /api/shutdown -> Completed as a client sees it, checked against the stand-in."""
    started = time.perf_counter()
    response = host.request("POST", "/api/shutdown", json=body or {})
    if response.status_code != 202:
        raise RuntimeError(f"POST /api/shutdown answered {response.status_code}: {response.text[:500]}")
    status_url = response.json()["statusQueryGetUri"]
    deadline = started + timeout
    status: dict[str, Any] = {}
    with requests.Session() as session:
        while time.perf_counter() < deadline:
            answer = session.get(status_url, timeout=30)
            status = answer.json()
            if answer.status_code == 200 and status.get("runtimeStatus") in TERMINAL:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"shutdown did not finish within {timeout:.0f} s; last status {status}")
    wall = time.perf_counter() - started
    if status.get("runtimeStatus") != "Completed":
        raise RuntimeError(f"shutdown ended {status.get('runtimeStatus')}: {str(status.get('output'))[:1000]}")
    totals = (status.get("output") or {}).get("totals", {})
    stopped_in_standin = sum(1 for state in arm.states().values() if state == "Stopped")
    if totals.get("stopped") != expected or stopped_in_standin != expected:
        raise RuntimeError(
            f"expected {expected} stopped instances; report totals {totals}, stand-in shows {stopped_in_standin}"
        )
    return {"wall_seconds": wall, "totals": totals, "custom_status": status.get("customStatus")}


@contextlib.contextmanager
def process_env(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the sequential baseline (DefaultAzureCredential reads os.environ).

    The whole environment is restored afterwards: MLClient also sets AZUREML_CURRENT_CLOUD to its registered cloud,
    which would leak into devhost's workers (started later with this environment) and name a cloud unknown there.
    """
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sequential_loop(size: int, tls: LocalTls, identity: IdentityStandin) -> float:
    """List every workspace, then stop each instance and wait for Stopped before the next: the naive script."""
    from shared import compute
    from shared.settings import Workspace

    fleet = Fleet(tls, identity, size)
    arm = fleet.arm
    settings = app_settings(fleet, tls, identity)
    workspaces = [Workspace.parse(key) for key in settings["AML_WORKSPACES"].split(",")]
    with process_env(settings):
        # Not timed: importing azure.ai.ml and the first token, which the devhost runs also pay in their warm-up.
        compute.list_instances(workspaces[0])
        started = time.perf_counter()
        for workspace in workspaces:
            for instance in compute.list_instances(workspace):
                compute.begin_stop(workspace, instance.name)
                while compute.get_state(workspace, instance.name) != "Stopped":
                    time.sleep(0.25)
        seconds = time.perf_counter() - started
    stopped = sum(1 for state in arm.states().values() if state == "Stopped")
    fleet.close()
    if stopped != size:
        raise RuntimeError(f"sequential loop stopped {stopped} of {size}")
    return seconds


def run(ctx: Context) -> Result:
    sizes = [20, 50] if ctx.quick else [50, 200, 500]
    repeats = 2 if ctx.quick else 3
    sequential_size = 5 if ctx.quick else 20
    result = Result(
        "shutdown_fanout",
        "Compute shutdown fan-out",
        f"`POST /api/shutdown` on devhost, then the `statusQueryGetUri` followed (every 100 ms) to Completed; the "
        f"fleet is {WORKSPACES} workspaces in the HTTPS ARM stand-in (started by the harness, reached by the real "
        f"`MLClient` with managed-identity tokens from the identity stand-in), every instance Running and taking "
        f"{TRANSITION_SECONDS:g} s to stop. Each run checks that the report and the stand-in show every instance "
        "stopped. Baseline, same run: a sequential loop (list, then stop one instance and wait for Stopped, "
        f"polling every 0.25 s) with the same `shared.compute` functions over {sequential_size} instances, "
        "extrapolated linearly; and the theoretical sequential N x 2 s.",
        parameters={
            "instances": sizes,
            "workspaces": WORKSPACES,
            "stop transition (s)": TRANSITION_SECONDS,
            "repetitions": repeats,
            "ARM list page size": PAGE_SIZE,
            "SHUTDOWN_POLL_SECONDS": 1,
            "AML_POLLING_INTERVAL_SECONDS": 1,
            "sequential baseline instances": sequential_size,
            "worker processes": os.cpu_count(),
        },
    )
    if "start_shutdown" not in app_functions():
        result.notes.append("`start_shutdown` is not registered by function_app yet: nothing was measured.")
        return result
    tls = make_local_tls(ctx.scratch("tls"))
    identity = IdentityStandin()
    identity.start()
    runs: list[dict[str, Any]] = []
    fleet: Fleet | None = None
    try:
        sequential = sequential_loop(sequential_size, tls, identity)
        per_instance = sequential / sequential_size
        log.info("sequential: %d instances in %.1f s (%.2f s each)", sequential_size, sequential, per_instance)
        result.measure("seq_measured", f"sequential loop, {sequential_size} instances (measured)", "s").samples = [
            sequential
        ]
        fleet = Fleet(tls, identity, max(sizes))
        with devhost(ctx, "shutdown", app_settings(fleet, tls, identity)) as host:
            # Warm-up (not measured): workers import azure.ai.ml and build their MLClients on first use.
            warm = fleet.prepare(max(sizes))
            warm_seconds = shutdown_once(host, warm, WORKSPACES, {"include": ["ci-*-0000"]})["wall_seconds"]
            result.notes.append(
                f"Warm-up run (not measured; workers import azure.ai.ml and build their clients): {warm_seconds:.1f} s."
            )
            for size in sorted(sizes, reverse=True):
                for rep in range(repeats):
                    arm = fleet.prepare(size)
                    run_info = shutdown_once(host, arm, size)
                    runs.append({"instances": size, "repetition": rep, **run_info})
                    log.info("%d instances: %.2f s", size, run_info["wall_seconds"])
    finally:
        if fleet is not None:
            fleet.close()
        identity.stop()
    summarize_shutdown(result, sizes, runs, per_instance)
    return result


def summarize_shutdown(result: Result, sizes: list[int], runs: list[dict[str, Any]], per_instance: float) -> None:
    result.raw = {"runs": runs, "sequential_seconds_per_instance": per_instance}
    for size in sizes:
        walls = [r["wall_seconds"] for r in runs if r["instances"] == size]
        extrapolated = result.measure(
            f"seq_{size}", f"sequential loop, {size} instances (extrapolated)", "s", baseline_only=True
        )
        extrapolated.samples = [per_instance * size]
        result.measure(f"wall_{size}", f"{size} instances: POST -> Completed", "s", f"seq_{size}").samples = walls
        overhead = result.measure(
            f"overhead_{size}", f"{size} instances: overhead per instance, (wall - 2 s) / N", "ms"
        )
        overhead.samples = [(w - TRANSITION_SECONDS) / size * 1000 for w in walls]
        theoretical = size * TRANSITION_SECONDS
        speedup = result.measure(
            f"speedup_{size}", f"{size} instances: speed-up over a sequential {theoretical:,.0f} s (N x 2 s)", "x"
        )
        speedup.samples = [theoretical / w for w in walls]
    goal_size = GOAL_SIZE if GOAL_SIZE in sizes else max(sizes)
    result.goals = [
        Goal(
            f"{goal_size} instances across {WORKSPACES} workspaces stopped in under {GOAL_SECONDS:g} s",
            f"wall_{goal_size}",
            "<",
            GOAL_SECONDS,
        )
    ]
    medians = {
        s: statistics.median([r["wall_seconds"] for r in runs if r["instances"] == s])
        for s in sizes
        if any(r["instances"] == s for r in runs)
    }
    result.plots = [
        Plot(
            "shutdown_walltime.svg",
            "Shutdown wall time vs instances (2 s per stop)",
            "instances",
            "seconds (median, log)",
            [
                Series("devhost orchestration (POST -> Completed)", sorted(medians.items())),
                Series("sequential loop (measured, extrapolated)", [(s, s * per_instance) for s in sizes], True),
                Series("sequential, theoretical N x 2 s", [(s, s * TRANSITION_SECONDS) for s in sizes], True),
            ],
            log_y=True,
        )
    ]
