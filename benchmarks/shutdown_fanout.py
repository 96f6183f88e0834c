"""`shutdown_fanout`: `POST /api/shutdown` on devhost against the ARM stand-in (every instance takes 2 s to stop),
followed to Completed, at several fleet sizes; baseline: a sequential stop-and-wait loop with the same
`shared.compute` functions, measured on a small fleet and extrapolated, and the theoretical N x 2 s.
Then the largest fleet again with ARM's request buckets enforced by the stand-in (one subscription: writes 200
then 10/s), against the floor those buckets allow, and the ARM requests per instance from the reports and from
the stand-in's own log, side by side."""

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
from benchmarks.hosts import Context, app_functions, devhost, reset_write_buckets
from devhost.standins.arm import ArmStandin, generate_fleet, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.prices import PricesStandin
from devhost.standins.tls import LocalTls, make_local_tls
from tests.devhost_runner import TERMINAL, RunningHost

log = logging.getLogger(__name__)

WORKSPACES = 5
TRANSITION_SECONDS = 2.0
PAGE_SIZE = 50
GOAL_SIZE = 500
GOAL_SECONDS = 5.0
WRITE_BURST, WRITE_REFILL = 200, 10.0  # ARM's write bucket per subscription
FLOOR_FACTOR = 1.2


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
        self.arm.reset_counts()  # a full bucket and an empty request log for each run
        return self.arm

    def close(self) -> None:
        self.arm.stop()


def app_settings(fleet: Fleet, tls: LocalTls, identity: IdentityStandin, prices_url: str = "") -> dict[str, str]:
    return {
        "PRICES_ENDPOINT": prices_url or "http://127.0.0.1:9/none",
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
    subscriptions = sorted({key.split("/", 1)[0] for key in host.settings["AML_WORKSPACES"].split(",")})
    reset_write_buckets(host, subscriptions, limited=arm.throttle == "arm")
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
    reported = (status.get("output") or {}).get("arm_requests") or {}
    log_ = arm.requests()
    standin = {
        "writes": sum(1 for r in log_ if r.method == "POST"),
        "throttled": sum(1 for r in log_ if r.status == 429),
        "list_pages": sum(1 for r in log_ if r.method == "GET" and r.path.rstrip("/").endswith("/computes")),
        "instance_reads": sum(1 for r in log_ if r.method == "GET" and "/computes/" in r.path),
        "operation_polls": sum(1 for r in log_ if "computeOperationsStatus" in r.path),
    }
    standin["total"] = len(log_)
    return {
        "wall_seconds": wall,
        "totals": totals,
        "custom_status": status.get("customStatus"),
        "arm_requests_reported": reported,
        "arm_requests_standin": standin,
    }


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
    from shared.compute import arm as compute
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
    arm_repeats = 1 if ctx.quick else 2
    sequential_size = 5 if ctx.quick else 20
    result = Result(
        "shutdown_fanout",
        "Compute shutdown fan-out",
        f"`POST /api/shutdown` on devhost, then the `statusQueryGetUri` followed (every 100 ms) to Completed; the "
        f"fleet is {WORKSPACES} workspaces of one subscription in the HTTPS ARM stand-in (started by the harness, "
        f"reached by the real `MLClient` with managed-identity tokens from the identity stand-in), every instance "
        f"Running and taking {TRANSITION_SECONDS:g} s to stop. Each run checks that the report and the stand-in "
        "show every instance stopped. Baseline, same run: a sequential loop (list, then stop one instance and wait "
        f"for Stopped, polling every 0.25 s) with the same `shared.compute` functions over {sequential_size} "
        "instances, extrapolated linearly; and the theoretical sequential N x 2 s. Then the largest fleet with the "
        "stand-in enforcing ARM's request buckets (`throttle=arm`: writes 200 at once then 10/s, reads 250 then "
        "25/s, 429 + Retry-After beyond), against the floor those buckets allow: (N - 200) / 10 s + the 2 s "
        "transition. ARM requests per instance: from the reports (`arm_requests`, counted by the app's activities "
        "on the wire) and from the stand-in's own request log.",
        parameters={
            "instances": sizes,
            "workspaces": WORKSPACES,
            "subscriptions": 1,
            "stop transition (s)": TRANSITION_SECONDS,
            "repetitions": repeats,
            "repetitions with ARM buckets": arm_repeats,
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
    prices = PricesStandin()
    prices_url = prices.start()
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
        with devhost(ctx, "shutdown", app_settings(fleet, tls, identity, prices_url)) as host:
            # Warm-up (not measured): workers import azure.ai.ml and build their MLClients on first use.
            warm = fleet.prepare(max(sizes))
            warm_seconds = shutdown_once(host, warm, WORKSPACES, {"include": ["ci-*-0000"]})["wall_seconds"]
            result.notes.append(
                f"Warm-up run (not measured; workers import azure.ai.ml and build their clients): {warm_seconds:.1f} s."
            )
            for size in sorted(sizes, reverse=True):
                if size == max(sizes):
                    fleet.arm.throttle = "arm"
                    for rep in range(arm_repeats):
                        # ARM's write bucket refills in 20 s; so must the app's own copies in the workers (the
                        # stand-in's reset is instant, ARM's never is): a run right after another would start on
                        # a bucket the app rightly believes to be empty.
                        time.sleep(WRITE_BURST / WRITE_REFILL)
                        arm = fleet.prepare(size)
                        run_info = shutdown_once(host, arm, size)
                        runs.append({"instances": size, "repetition": rep, "throttle": "arm", **run_info})
                        log.info("%d instances, ARM buckets: %.2f s", size, run_info["wall_seconds"])
                    fleet.arm.throttle = "off"
                for rep in range(repeats):
                    arm = fleet.prepare(size)
                    run_info = shutdown_once(host, arm, size)
                    runs.append({"instances": size, "repetition": rep, "throttle": "off", **run_info})
                    log.info("%d instances: %.2f s", size, run_info["wall_seconds"])
    finally:
        if fleet is not None:
            fleet.close()
        prices.stop()
        identity.stop()
    summarize_shutdown(result, sizes, runs, per_instance)
    return result


def floor_seconds(size: int) -> float:
    """The shortest time ARM's write bucket allows for `size` stops in one subscription, plus the transition."""
    return max(0, size - WRITE_BURST) / WRITE_REFILL + TRANSITION_SECONDS


def summarize_shutdown(result: Result, sizes: list[int], runs: list[dict[str, Any]], per_instance: float) -> None:
    result.raw = {"runs": runs, "sequential_seconds_per_instance": per_instance}
    for size in sizes:
        walls = [r["wall_seconds"] for r in runs if r["instances"] == size and r.get("throttle", "off") == "off"]
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
    largest = max(sizes)
    floor = floor_seconds(largest)
    result.measure(
        "floor", f"{largest} instances: ARM write-bucket floor, (N - 200) / 10 s + 2 s", "s", baseline_only=True
    ).samples = [floor]
    throttled = [r for r in runs if r.get("throttle") == "arm"]
    result.measure(
        f"wall_arm_{largest}", f"{largest} instances, ARM buckets on: POST -> Completed", "s", "floor"
    ).samples = [r["wall_seconds"] for r in throttled]
    for mode, chosen in (
        ("off", [r for r in runs if r["instances"] == largest and r["throttle"] == "off"]),
        ("arm", throttled),
    ):
        label = "ARM buckets on" if mode == "arm" else "no throttling"
        reported = result.measure(
            f"req_report_{mode}", f"{largest} instances, {label}: ARM requests per instance (reports)", "req"
        )
        reported.samples = [
            (r["arm_requests_reported"].get("reads", 0) + r["arm_requests_reported"].get("writes", 0)) / largest
            for r in chosen
        ]
        standin = result.measure(
            f"req_standin_{mode}", f"{largest} instances, {label}: ARM requests per instance (stand-in's log)", "req"
        )
        standin.samples = [r["arm_requests_standin"]["total"] / largest for r in chosen]
        beyond = result.measure(
            f"req_nolist_{mode}",
            f"{largest} instances, {label}: requests per instance other than list pages (stand-in)",
            "req",
        )
        beyond.samples = [
            (r["arm_requests_standin"]["total"] - r["arm_requests_standin"]["list_pages"]) / largest for r in chosen
        ]
    result.goals = [
        Goal(
            f"{goal_size} instances across {WORKSPACES} workspaces stopped in under {GOAL_SECONDS:g} s",
            f"wall_{goal_size}",
            "<",
            GOAL_SECONDS,
        ),
        Goal(
            f"{largest} instances with ARM's buckets on within {FLOOR_FACTOR:g} x the floor ({floor:g} s)",
            f"wall_arm_{largest}",
            "<=",
            FLOOR_FACTOR * floor,
        ),
        Goal("at most 1.2 ARM requests per instance besides list pages (ARM buckets on)", "req_nolist_arm", "<=", 1.2),
    ]
    medians = {
        s: statistics.median([r["wall_seconds"] for r in runs if r["instances"] == s and r["throttle"] == "off"])
        for s in sizes
        if any(r["instances"] == s and r["throttle"] == "off" for r in runs)
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
