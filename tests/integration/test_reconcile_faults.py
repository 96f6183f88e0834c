"""The reconciler acts on every (instance, boundary) exactly once whatever fails (issue 19): overlapping runs, an
ARM listing that fails at a boundary, a damaged progress blob; the long cases (a minute of outage with the minute
timer, the host killed mid-run) are soak tests. The ARM stand-in in this process counts every request."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import LocalTls, make_local_tls
from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.standins import ca_bundle_with, compute_settings
from tests.helpers.storage import blob_service, ensure_container
from tests.reliability import TestRecorder

pytestmark = pytest.mark.integration

SUB = "0a1b2c3d-0000-4000-8000-0000000fa017"
WS_A, WS_B = f"{SUB}/rg-a/ws-a", f"{SUB}/rg-b/ws-b"
BERLIN = ZoneInfo("Europe/Berlin")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _period(begin: datetime, minutes: int) -> dict[str, str]:
    local = begin.astimezone(BERLIN).replace(second=0, microsecond=0)
    end = local + timedelta(minutes=minutes)
    return {"days": DAYS[local.weekday()], "begin": f"{local:%H:%M}", "end": f"{end:%H:%M}"}


def schedules(now: datetime) -> list[dict[str, Any]]:
    """A start boundary 10 minutes ago, a stop boundary 5 minutes ago, and an enforced schedule now outside its
    period: each has instances to act on once."""
    return [
        {"name": "opened", "timezone": "Europe/Berlin", "periods": [_period(now - timedelta(minutes=10), 120)]},
        {"name": "closed", "timezone": "Europe/Berlin", "periods": [_period(now - timedelta(minutes=65), 60)]},
        {
            "name": "strict",
            "timezone": "Europe/Berlin",
            "enforced": True,
            "periods": [_period(now + timedelta(hours=3), 60)],
        },
    ]


def _instance(name: str, state: str, schedule: str) -> dict[str, Any]:
    return {
        "name": name,
        "tags": {"compute-schedule": schedule},
        "properties": {"computeType": "ComputeInstance", "properties": {"state": state, "vmSize": "STANDARD_DS3_V2"}},
    }


def fleet(per_schedule: int = 3) -> dict[str, Any]:
    def computes(ws: str) -> list[dict[str, Any]]:
        out = []
        for i in range(per_schedule):
            out.append(_instance(f"{ws}-open-{i}", "Stopped", "opened"))
            out.append(_instance(f"{ws}-close-{i}", "Running", "closed"))
            out.append(_instance(f"{ws}-strict-{i}", "Running", "strict"))
        return out

    return {
        "location": "westeurope",
        "workspaces": [
            {"subscription": SUB, "resource_group": rg, "name": name, "computes": computes(name)}
            for rg, name in (("rg-a", "ws-a"), ("rg-b", "ws-b"))
        ],
    }


FLEET = fleet()
# What each instance's schedule wants now; every one of them needs exactly one request to get there.
WANTED = {
    (ws, c["name"]): ("Running" if "-open-" in c["name"] else "Stopped")
    for ws, w in zip((WS_A, WS_B), FLEET["workspaces"], strict=True)
    for c in w["computes"]
}


@dataclass
class Bench:
    host: RunningHost
    arm: ArmStandin
    data: Path
    settings: dict[str, str]
    tls: LocalTls


def settings_for(identity: IdentityStandin, arm: ArmStandin, ca_bundle: Path, **extra: str) -> dict[str, str]:
    return {
        **compute_settings(identity, arm, FLEET, ca_bundle),
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_POLL_SECONDS": "1",
        "SHUTDOWN_STOP_TIMEOUT_SECONDS": "20",
        "AML_HTTP_BACKOFF_SECONDS": "0.05",
        "AML_HTTP_RETRIES": "1",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_TIMER": "false",
        "COMPUTE_SCHEDULES": json.dumps(schedules(datetime.now(UTC))),
        "PRICE_OVERRIDES": '{"STANDARD_DS3_V2": 0.5}',
        **extra,
    }


@pytest.fixture(scope="module")
def identity() -> Iterator[IdentityStandin]:
    with IdentityStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, identity: IdentityStandin) -> Iterator[Bench]:
    data = tmp_path_factory.mktemp("reconcile-faults")
    tls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    with ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid, throttle="arm") as arm:
        settings = settings_for(identity, arm, ca_bundle)
        host = start_devhost(data / "devhost", settings, workers=2)
        try:
            yield Bench(host, arm, data, settings, tls)
        finally:
            host.stop()


def reset(host: RunningHost, arm: ArmStandin, last_evaluated: datetime, fleet: dict[str, Any] = FLEET) -> None:
    """A fresh fleet (no faults), no progress kept, and the old single window starting at `last_evaluated`."""
    arm.reload(fleet)
    container = ensure_container(blob_service(host), "reports")
    for blob in container.list_blobs(name_starts_with="reconcile/state"):
        container.delete_blob(blob.name)
    container.upload_blob(
        "reconcile/state.json", json.dumps({"last_evaluated": last_evaluated.isoformat()}), overwrite=True
    )


def start(host: RunningHost) -> str:
    response = host.request("POST", "/api/reconcile", json={})
    assert response.status_code == 202, response.text
    return str(response.json()["statusQueryGetUri"])


def finish(host: RunningHost, url: str, timeout: float = 90) -> dict[str, Any]:
    status = host.wait_for_completion(url, timeout=timeout)
    assert status["runtimeStatus"] == "Completed", json.dumps(status, indent=1)
    return status


def saved_report(host: RunningHost, status: dict[str, Any]) -> dict[str, Any]:
    blob = status["output"]["report_blob"]
    assert blob, status["output"]
    data = blob_service(host).get_blob_client("reports", blob.split("/", 1)[1]).download_blob().readall()
    report: dict[str, Any] = json.loads(data)
    return report


def requests_per_instance(arm: ArmStandin) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for record in arm.requests("POST"):
        parts = record.path.split("/")
        workspace = f"{parts[2]}/{parts[4]}/{parts[8]}"
        key = (workspace, parts[10])
        counts[key] = counts.get(key, 0) + 1
    return counts


def state_of(host: RunningHost, workspace: str) -> dict[str, Any]:
    blob = f"reconcile/state/{workspace.lower()}.json"
    data = blob_service(host).get_blob_client("reports", blob).download_blob().readall()
    state: dict[str, Any] = json.loads(data)
    return state


def assert_exactly_once(arm: ArmStandin) -> None:
    deadline = time.monotonic() + 10
    while arm.states() != WANTED and time.monotonic() < deadline:
        time.sleep(0.2)  # the last stops finish their transition
    assert arm.states() == WANTED
    assert requests_per_instance(arm) == dict.fromkeys(WANTED, 1)


def month_savings(host: RunningHost) -> dict[str, Any]:
    month = datetime.now(UTC).strftime("%Y-%m")
    body: dict[str, Any] = host.request("GET", f"/api/savings?month={month}").json()
    return body


# --- overlapping runs ---------------------------------------------------------------------------------------------


def test_ten_reconciles_at_once_act_on_each_boundary_once(bench: Bench, reliability: TestRecorder) -> None:
    reset(bench.host, bench.arm, datetime.now(UTC) - timedelta(minutes=30))
    before = month_savings(bench.host)
    with ThreadPoolExecutor(10) as pool:
        urls = list(pool.map(lambda _: start(bench.host), range(10)))
        statuses = list(pool.map(lambda url: finish(bench.host, url), urls))
    assert_exactly_once(bench.arm)
    reports = [saved_report(bench.host, s) for s in statuses]
    stops = sum(1 for state in WANTED.values() if state == "Stopped")
    assert sum(r["totals"]["stopped"] for r in reports) == stops
    assert sum(r["totals"]["started"] for r in reports) == len(WANTED) - stops
    # The runs that found a window held by another say so instead of acting.
    reasons = [i["reason"] for r in reports for i in r["instances"] if i["outcome"] == "skipped"]
    assert any("claimed by run " in reason for reason in reasons), reasons
    # Savings count each stop once: the month grew by exactly what the acting runs' reports say.
    after = month_savings(bench.host)
    assert after["stopped"] - before["stopped"] == stops
    acted = sum(r["totals"]["estimated_savings"] for r in reports)
    assert after["estimated_savings"] - before["estimated_savings"] == pytest.approx(acted, abs=0.011)
    # The progress moved past the windows: the next run has nothing left to do.
    again = saved_report(bench.host, finish(bench.host, start(bench.host)))
    assert again["totals"]["stopped"] == again["totals"]["started"] == 0
    assert requests_per_instance(bench.arm) == dict.fromkeys(WANTED, 1)
    reliability.record(
        "fault",
        f"10 POST /api/reconcile at once around a start, a stop and an enforced boundary ({len(WANTED)} instances, "
        "2 workspaces, ARM buckets on)",
        tries=10,
        outcome=f"each instance 1 request, in its scheduled state; {stops} stopped + {len(WANTED) - stops} started "
        "counted once in the reports and /api/savings; the other runs report `claimed by run ...`",
    )


# --- ARM's listing fails at a boundary ----------------------------------------------------------------------------


def test_a_listing_that_fails_at_a_boundary_leaves_it_to_the_next_run(bench: Bench, reliability: TestRecorder) -> None:
    reset(bench.host, bench.arm, datetime.now(UTC) - timedelta(minutes=30))
    outage = bench.arm.add_fault(
        {"method": "GET", "path_regex": r"/ws-a/computes/?$", "status": 503, "count": None, "message": "ARM down"}
    )
    failed_runs = []
    for _ in range(2):  # the minute timer's next runs, while ARM still fails
        report = saved_report(bench.host, finish(bench.host, start(bench.host)))
        assert report["totals"]["workspaces_failed"] == 1
        assert "ARM down" in next(w["error"] for w in report["workspaces"] if w["workspace"] == WS_A)
        failed_runs.append(report)
    state = state_of(bench.host, WS_A)["schedules"]
    assert {k: (s["claim"], s["failures"]) for k, s in state.items()} == dict.fromkeys(state, (None, 2))
    assert all("ARM down" in s["last_error"] for s in state.values())
    assert not any(key[0] == WS_A for key in requests_per_instance(bench.arm))  # nothing acted on in ws-a yet
    outage.count = outage.hits  # ARM is back
    report = saved_report(bench.host, finish(bench.host, start(bench.host)))
    assert report["totals"]["workspaces_failed"] == 0
    assert_exactly_once(bench.arm)
    assert all(s["failures"] == 0 and s["last_error"] is None for s in state_of(bench.host, WS_A)["schedules"].values())
    reliability.record(
        "fault",
        "ARM's listing of one workspace answers 503 through 2 reconciles at a boundary, then recovers",
        tries=outage.hits,
        outcome="the failing runs report workspaces_failed: 1 and keep the window (failures counted in the state); "
        "the first run after the outage acts: each instance 1 request, in its scheduled state",
    )


# --- damaged progress ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not JSON"),
        ('{"version": 1, "schedules": {"closed": {"done_through": "2026-11-30T06:00:00"}}}', "has no UTC offset"),
        ('{"version": 1, "schedules": {"closed": {"done_through": "9999-12-31T23:59:59+00:00"}}}', "out of range"),
    ],
    ids=["not-json", "naive-time", "year-9999"],
)
def test_a_damaged_progress_blob_is_repaired_reported_and_the_boundary_acted_on(
    bench: Bench, content: str, words: str, reliability: TestRecorder
) -> None:
    reset(bench.host, bench.arm, datetime.now(UTC) - timedelta(minutes=30))
    container = blob_service(bench.host).get_container_client("reports")
    container.upload_blob(f"reconcile/state/{WS_A.lower()}.json", content, overwrite=True)
    report = saved_report(bench.host, finish(bench.host, start(bench.host)))
    [error] = [e for e in report["state_errors"] if e["workspace"] == WS_A]
    assert words in error["error"] and f"reconcile/state/{WS_A.lower()}.json" in error["error"]
    assert "resume" in error["error"]  # says what was done about it
    assert_exactly_once(bench.arm)  # the 1-hour catch-up covers the boundaries of 5 and 10 minutes ago
    repaired = state_of(bench.host, WS_A)
    assert repaired["version"] == 1 and set(repaired["schedules"]) == {"opened", "closed", "strict"}
    # Repaired for good: the next run reports nothing wrong.
    assert finish(bench.host, start(bench.host))["output"]["state_errors"] == []
    reliability.record(
        "fault",
        f"reconcile progress blob damaged ({words})",
        tries=1,
        outcome="repaired to a 1-hour catch-up, written back, named in the report's state_errors; boundaries acted "
        "on once; the next run is clean",
    )


def test_a_malformed_schedule_is_reported_by_the_first_timer_run_only(bench: Bench) -> None:
    """COMPUTE_SCHEDULES malformed, the minute timer on: one report for the value, not one a minute (the runs are
    started as the timer starts them, through the Durable API, so the test need not wait for minutes)."""
    bench.arm.reload(FLEET)
    broken = {**bench.settings, "COMPUTE_SCHEDULES": '[{"name": "x", "timezone": "UTC"}]'}
    host = start_devhost(bench.data / "broken", broken, workers=1, azurite=False, azurite_port=bench.host.azurite_port)
    try:
        outputs = []
        for minute in range(3):
            body = {
                "workspaces": [WS_A, WS_B],
                "schedule_tag": "compute-schedule",
                "dry_run": False,
                "poll_seconds": 1,
                "timeout_seconds": 20,
                "trigger": "timer",
            }
            url = f"{host.base_url}/runtime/webhooks/durabletask/orchestrators/reconcile_orchestrator/broken-{minute}"
            answer = host.request("POST", url, json=body)
            assert answer.status_code == 202, answer.text
            outputs.append(finish(host, answer.json()["statusQueryGetUri"])["output"])
        first, *later = outputs
        assert "schedule 'x', field 'periods'" in first["schedules_error"] and first["report_blob"]
        assert all(o == {**o, "acted": False} and "report_blob" not in o for o in later), later
        assert bench.arm.requests("POST") == []
    finally:
        host.stop()


# --- long cases ---------------------------------------------------------------------------------------------------


@pytest.mark.soak
def test_a_minute_of_failed_listings_at_a_boundary_is_caught_up_by_the_minute_timer(
    tmp_path: Path, identity: IdentityStandin, reliability: TestRecorder
) -> None:
    tls = make_local_tls(tmp_path / "tls")
    ca_bundle = ca_bundle_with(tls, tmp_path / "ca-bundle.pem")
    with ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid, throttle="arm") as arm:
        host = start_devhost(tmp_path / "host", settings_for(identity, arm, ca_bundle, RECONCILE_TIMER="true"))
        try:
            reset(host, arm, datetime.now(UTC) - timedelta(minutes=30))
            outage = arm.add_fault({"method": "GET", "path_regex": r"/computes/?$", "status": 503, "count": None})
            started = time.monotonic()
            time.sleep(60)  # a minute of outage: every timer run in it fails its listings
            failed_listings = outage.hits
            outage.count = outage.hits
            deadline = time.monotonic() + 180
            while arm.states() != WANTED and time.monotonic() < deadline:
                time.sleep(1)
            seconds = time.monotonic() - started
            assert_exactly_once(arm)
            assert failed_listings > 0
        finally:
            host.stop()
    reliability.record(
        "fault",
        "ARM's listings answer 503 for 60 s at a boundary, the minute timer reconciling (2 workspaces)",
        tries=failed_listings,
        outcome=f"no boundary lost: every instance in its scheduled state {seconds:.0f} s after the outage began, "
        "1 request each",
    )


@pytest.mark.soak
def test_the_host_killed_mid_run_and_started_again_completes_the_boundary_once(
    tmp_path: Path, identity: IdentityStandin, reliability: TestRecorder
) -> None:
    """kill -9 of devhost while a reconcile sends its stops (ARM's write bucket paces them), a new devhost on the
    same data folder: its minute timer takes the dead run's window over once the claim expires. The workers of the
    dead host finish the batch they were sending (as a host shutting down lets its activities end); the rest of
    the window (more than a batch per workspace) is left to the run that takes over, from a fresh listing."""
    size = 450  # per workspace: 900 stops, 200 at once then 10/s, in steps of 200 per workspace
    big = {
        "location": "westeurope",
        "workspaces": [
            {
                "subscription": SUB,
                "resource_group": rg,
                "name": name,
                "computes": [_instance(f"{name}-close-{i:03d}", "Running", "closed") for i in range(size)],
            }
            for rg, name in (("rg-a", "ws-a"), ("rg-b", "ws-b"))
        ],
    }
    wanted = {(ws, f"{ws.rsplit('/', 1)[1]}-close-{i:03d}"): "Stopped" for ws in (WS_A, WS_B) for i in range(size)}
    tls = make_local_tls(tmp_path / "tls")
    ca_bundle = ca_bundle_with(tls, tmp_path / "ca-bundle.pem")
    with ArmStandin(
        big, tls, transition_seconds=2, page_size=50, token_validator=identity.is_valid, throttle="arm"
    ) as arm:
        settings = settings_for(identity, arm, ca_bundle)
        first = start_devhost(tmp_path / "host", settings)
        reset(first, arm, datetime.now(UTC) - timedelta(minutes=30), big)
        start(first)
        deadline = time.monotonic() + 60
        while len(arm.requests("POST")) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        sent_before = len(arm.requests("POST"))
        while True:  # the dead host's workers end the batch in flight, then exit
            time.sleep(3)
            if len(arm.requests("POST")) == sent_before:
                break
            sent_before = len(arm.requests("POST"))
        assert 0 < sent_before < 2 * size, "the run was not mid-way when the host was killed"
        second = start_devhost(
            tmp_path / "host", {**settings, "RECONCILE_TIMER": "true"}, azurite_port=first.azurite_port
        )
        try:
            deadline = time.monotonic() + 330  # the dead run's claim expires (3 min), then the next minute's run
            while arm.states() != wanted and time.monotonic() < deadline:
                time.sleep(1)
            seconds = time.monotonic() - killed_at
            states = arm.states()
            assert states == wanted, {k: v for k, v in states.items() if v != "Stopped"}
            counts = requests_per_instance(arm)
            twice = [k[1] for k, v in counts.items() if v != 1]
            detail = {
                n: [(r.status, round(r.at - killed_at, 1)) for r in arm.requests("POST", f"/{n}/")] for n in twice
            }
            assert counts == dict.fromkeys(wanted, 1), detail
            # The run that took over reports what it stopped, and only that: each action counted once.
            container = blob_service(second).get_container_client("reports")
            reports: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60  # the run confirms its last stops, then saves its report
            while not reports and time.monotonic() < deadline:
                time.sleep(1)
                reports = [
                    json.loads(container.download_blob(b.name).readall())
                    for b in container.list_blobs(name_starts_with="reconcile/2")
                ]
            assert sum(r["totals"]["stopped"] for r in reports) == 2 * size - sent_before
        finally:
            second.stop()
    reliability.record(
        "fault",
        f"devhost killed (SIGKILL) mid-reconcile ({2 * size} paced stops in 2 workspaces), started again on the "
        "same data folder with the minute timer on",
        tries=1,
        outcome=f"{sent_before} stops sent by the dead run (its workers ended their batch); its claim expired and "
        f"the next run stopped the other {2 * size - sent_before}: all Stopped {seconds:.0f} s after the kill, "
        "1 request each, each counted once",
    )
