"""Working-hours schedules end to end: the real app on devhost, its real MLClient against the ARM stand-in of this
process; schedules in Europe/Berlin (DST), preview at chosen instants, reconciles over real windows."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.prices import PricesStandin
from devhost.standins.tls import make_local_tls
from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.standins import ca_bundle_with, compute_settings
from tests.helpers.storage import blob_service, ensure_container

pytestmark = pytest.mark.integration

SUB = "0a1b2c3d-0000-4000-8000-00000000c10c"
WS = f"{SUB}/rg-teams/ws-teams"
BERLIN = ZoneInfo("Europe/Berlin")
NOW_LOCAL = datetime.now(UTC).astimezone(BERLIN)
BEGIN_LOCAL = (NOW_LOCAL - timedelta(minutes=10)).replace(second=0, microsecond=0)
LATER_LOCAL = NOW_LOCAL + timedelta(hours=3)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

SCHEDULES: list[dict[str, Any]] = [
    # Fixed office hours, for previews at chosen instants (around boundaries, across the DST change of March).
    {
        "name": "berlin-office",
        "timezone": "Europe/Berlin",
        "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
    },
    # A period that began 10 minutes ago and lasts 2 hours: its start boundary is in the past.
    {
        "name": "now-window",
        "timezone": "Europe/Berlin",
        "periods": [
            {
                "days": DAY_NAMES[BEGIN_LOCAL.weekday()],
                "begin": f"{BEGIN_LOCAL:%H:%M}",
                "end": f"{BEGIN_LOCAL + timedelta(hours=2):%H:%M}",
            }
        ],
    },
    # A period 3 hours from now: now is outside it, for transitions-only vs enforced.
    *(
        {
            "name": name,
            "timezone": "Europe/Berlin",
            "enforced": enforced,
            "periods": [
                {
                    "days": DAY_NAMES[LATER_LOCAL.weekday()],
                    "begin": f"{LATER_LOCAL:%H:%M}",
                    "end": f"{LATER_LOCAL + timedelta(hours=1):%H:%M}",
                }
            ],
        }
        for name, enforced in (("later-loose", False), ("later-strict", True))
    ),
]


def _instance(name: str, state: str, schedule: str | None = None, size: str = "STANDARD_DS3_V2") -> dict[str, Any]:
    return {
        "name": name,
        "tags": {"compute-schedule": schedule} if schedule else {"owner": name},
        "properties": {"computeType": "ComputeInstance", "properties": {"state": state, "vmSize": size}},
    }


FLEET: dict[str, Any] = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-teams",
            "name": "ws-teams",
            "computes": [
                _instance("ci-office", "Stopped", "berlin-office"),
                _instance("ci-window-stopped", "Stopped", "now-window"),
                _instance("ci-window-running", "Running", "now-window", size="STANDARD_E4DS_V4"),
                _instance("ci-loose", "Running", "later-loose"),
                _instance("ci-strict", "Running", "later-strict", size="STANDARD_NC6S_V3"),
                _instance("ci-strict-job", "JobRunning", "later-strict"),
                _instance("ci-typo", "Running", "berlin-ofice"),
                _instance("ci-untagged", "Running"),
            ],
        }
    ],
}


@dataclass
class Bench:
    host: RunningHost
    arm: ArmStandin
    data: Path
    settings: dict[str, str]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    data = tmp_path_factory.mktemp("schedules")
    tls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    with (
        IdentityStandin() as identity,
        ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid, throttle="arm") as arm,
        PricesStandin() as prices,
    ):
        settings = {
            **compute_settings(identity, arm, FLEET, ca_bundle),
            "DATA_STORAGE": "UseDevelopmentStorage=true",
            "SHUTDOWN_POLL_SECONDS": "1",
            "SHUTDOWN_STOP_TIMEOUT_SECONDS": "8",
            "AML_HTTP_BACKOFF_SECONDS": "0.05",
            "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",  # never during a test
            "RECONCILE_TIMER": "false",  # the tests start reconciles themselves
            "COMPUTE_SCHEDULES": json.dumps(SCHEDULES),
            "PRICES_ENDPOINT": prices.url,
        }
        host = start_devhost(data / "devhost", settings, workers=1)
        try:
            yield Bench(host, arm, data, settings)
        finally:
            host.stop()


@pytest.fixture
def fleet(bench: Bench) -> Bench:
    bench.arm.reload(FLEET)
    _set_last_evaluated(bench.host, None)
    return bench


def _container(host: RunningHost) -> Any:
    return ensure_container(blob_service(host), "reports")


def _set_last_evaluated(host: RunningHost, moment: datetime | None) -> None:
    """As if the app's last reconcile had evaluated `moment` (None: no reconcile ever ran): the single window of
    older versions, which is where the windows of a workspace's schedules start when it has no progress yet."""
    container = _container(host)
    for blob in container.list_blobs(name_starts_with="reconcile/state/"):
        container.delete_blob(blob.name)
    blob = container.get_blob_client("reconcile/state.json")
    if moment is None:
        if blob.exists():
            blob.delete_blob()
        return
    blob.upload_blob(json.dumps({"last_evaluated": moment.isoformat()}), overwrite=True)


def _reconcile(host: RunningHost, dry_run: bool = False) -> dict[str, Any]:
    """A reconcile through POST /api/reconcile; its saved report (the status output is its summary)."""
    response = host.request("POST", "/api/reconcile", json={"dry_run": dry_run})
    assert response.status_code == 202, response.text
    status = host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=60)
    assert status["runtimeStatus"] == "Completed", json.dumps(status, indent=1)
    return _saved(host, status)


def _saved(host: RunningHost, status: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = status["output"]
    started = datetime.fromisoformat(summary["started_at"])
    kind = "reconcile" if status["name"] == "reconcile_orchestrator" else "shutdown"
    blob = f"{kind}/{started:%Y/%m/%d}/{status['instanceId']}.json"
    assert summary["report_blob"] == f"reports/{blob}"
    saved: dict[str, Any] = json.loads(_container(host).get_blob_client(blob).download_blob().readall())
    assert {k: v for k, v in saved.items() if k != "instances"} == {
        k: v for k, v in summary.items() if k not in ("report_blob", "report_error", "failures")
    }
    return saved


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["instances"]}


def _preview(host: RunningHost, at: str) -> dict[str, dict[str, Any]]:
    response = host.request("POST", "/api/schedules/preview", json={"at": at})
    assert response.status_code == 200, response.text
    return {r["name"]: r for r in response.json()["instances"]}


# --- preview ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "action", "desired"),
    [
        ("2026-03-27T06:59:30Z", "none", "Stopped"),  # Friday 07:59:30 CET
        ("2026-03-27T07:00:30Z", "start", "Running"),  # Friday 08:00:30 CET: the start boundary, in UTC 07:00
        ("2026-03-27T10:00:00+02:00", "none", "Running"),  # 09:00 CET (any offset): transitions only
        ("2026-03-30T05:59:30Z", "none", "Stopped"),  # Monday after the DST change, 07:59:30 CEST
        ("2026-03-30T06:00:30Z", "start", "Running"),  # Monday 08:00:30 CEST: the boundary moved to 06:00 UTC
        ("2026-03-30T07:00:30Z", "none", "Running"),  # 07:00 UTC is 09:00 CEST now: no boundary
        ("2026-03-28T07:00:30Z", "none", "Stopped"),  # Saturday
    ],
)
def test_preview_starts_at_the_local_boundary_across_a_dst_change(
    fleet: Bench, at: str, action: str, desired: str
) -> None:
    office = _preview(fleet.host, at)["ci-office"]
    assert (office["action"], office["desired"], office["schedule"]) == (action, desired, "berlin-office")
    assert office["workspace"] == WS and office["state"] == "Stopped"
    assert fleet.arm.requests("POST") == []  # reads only


def test_preview_reports_unknown_schedules_and_leaves_untagged_out(fleet: Bench) -> None:
    instances = _preview(fleet.host, "2026-03-27T07:00:30Z")
    assert "ci-untagged" not in instances
    assert instances["ci-typo"]["action"] == "none"
    assert instances["ci-typo"]["reason"] == (
        "tag compute-schedule=berlin-ofice names no schedule (known: berlin-office, later-loose, later-strict, "
        "now-window); nightly policy applies"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "at"),
        ({"at": "tomorrow"}, "at"),
        ({"at": "2026-03-27T07:00:30"}, "at"),
        ({"at": 5}, "at"),
        ({"at": "2026-03-27T07:00:30Z", "when": 1}, "when"),
    ],
)
def test_preview_refuses_bad_input_naming_the_field(bench: Bench, body: dict[str, Any], field: str) -> None:
    response = bench.host.request("POST", "/api/schedules/preview", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_endpoints_need_the_function_key(bench: Bench) -> None:
    assert bench.host.request("GET", "/api/schedules", key=False).status_code == 401
    assert bench.host.request("POST", "/api/reconcile", key=False, json={}).status_code == 401
    assert bench.host.request("POST", "/api/reconcile", json={"dry_run": "yes"}).json()["field"] == "dry_run"


def test_list_schedules_shows_next_transitions_and_followers(fleet: Bench) -> None:
    response = fleet.host.request("GET", "/api/schedules")
    assert response.status_code == 200, response.text
    body = response.json()
    by_name = {s["name"]: s for s in body["schedules"]}
    office = by_name["berlin-office"]
    assert [i["name"] for i in office["instances"]] == ["ci-office"]
    first = office["next_transitions"][0]
    local = datetime.fromisoformat(first["local"])
    assert first["action"] in ("start", "stop")
    assert local.strftime("%H:%M") in ("08:00", "19:00")
    assert datetime.fromisoformat(first["at"].replace("Z", "+00:00")) == local
    assert body["instances_with_unknown_schedule"] == [
        {"workspace": WS, "name": "ci-typo", "state": "Running", "schedule": "berlin-ofice"}
    ]


# --- reconcile -------------------------------------------------------------------------------------------------------


def test_a_missed_boundary_is_caught_up_once(fleet: Bench) -> None:
    # The app was down when now-window began (10 minutes ago): its last reconcile evaluated 30 minutes ago.
    _set_last_evaluated(fleet.host, datetime.now(UTC) - timedelta(minutes=30))
    report = _reconcile(fleet.host)
    results = _by_name(report)
    started = results["ci-window-stopped"]
    assert (started["decision"], started["outcome"]) == ("start", "started"), started
    assert "start boundary at" in started["reason"]
    assert results["ci-window-running"]["outcome"] == "skipped"
    assert report["totals"]["started"] == 1
    assert fleet.arm.state_of(WS, "ci-window-stopped") == "Running"
    assert report["arm_requests"]["writes"] == len(fleet.arm.requests("POST")) == 2  # and ci-strict, enforced
    # A user stops it again; the next reconcile's window starts where this one ended: not started twice.
    fleet.arm.set_state(WS, "ci-window-stopped", "Stopped")
    again = _by_name(_reconcile(fleet.host))["ci-window-stopped"]
    assert again["outcome"] == "skipped" and "transitions only" in again["reason"]
    assert fleet.arm.state_of(WS, "ci-window-stopped") == "Stopped"
    assert len(fleet.arm.requests("POST", r"/start$")) == 1


def test_transitions_only_leaves_a_running_instance_enforced_stops_it_but_never_a_job(fleet: Bench) -> None:
    _set_last_evaluated(fleet.host, datetime.now(UTC) - timedelta(minutes=1))
    report = _reconcile(fleet.host)
    results = _by_name(report)
    assert results["ci-loose"]["outcome"] == "skipped" and "transitions only" in results["ci-loose"]["reason"]
    assert (results["ci-strict"]["decision"], results["ci-strict"]["outcome"]) == ("stop", "stopped")
    assert "enforced" in results["ci-strict"]["reason"]
    assert results["ci-strict-job"]["outcome"] == "skipped" and "JobRunning" in results["ci-strict-job"]["reason"]
    states = fleet.arm.states()
    assert states[(WS, "ci-loose")] == "Running"
    assert states[(WS, "ci-strict")] == "Stopped"
    assert states[(WS, "ci-strict-job")] == "JobRunning"
    assert states[(WS, "ci-untagged")] == "Running"  # not the reconciler's business
    assert "ci-untagged" not in results
    # Savings from the prices stand-in: NC6s_v3 at its Linux pay-as-you-go price, until later-strict next starts.
    strict = results["ci-strict"]
    at = datetime.fromisoformat(report["started_at"])
    next_start = LATER_LOCAL.replace(second=0, microsecond=0)
    assert (strict["vm_size"], strict["hourly_price"], strict["currency"], strict["price_source"]) == (
        "STANDARD_NC6S_V3",
        3.823,
        "USD",
        "retail",
    )
    assert strict["estimated_hours_saved"] == pytest.approx((next_start - at).total_seconds() / 3600, abs=0.02)
    assert strict["estimated_savings"] == round(3.823 * strict["estimated_hours_saved"], 2)
    assert report["totals"]["estimated_savings"] == strict["estimated_savings"]
    assert report["totals"]["currency"] == "USD"
    assert results["ci-loose"]["estimated_savings"] is None  # not acted on: no estimate


def test_a_dry_run_acts_on_nothing_and_does_not_move_the_window(fleet: Bench) -> None:
    _set_last_evaluated(fleet.host, datetime.now(UTC) - timedelta(minutes=30))
    results = _by_name(_reconcile(fleet.host, dry_run=True))
    assert results["ci-window-stopped"]["decision"] == "would_start"
    assert results["ci-strict"]["decision"] == "would_stop"
    assert fleet.arm.requests("POST") == []
    # The boundary is still ahead of the (unmoved) window: a real run then starts it.
    assert _by_name(_reconcile(fleet.host))["ci-window-stopped"]["outcome"] == "started"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (
            {
                "status": 400,
                "code": "QuotaExceeded",
                "message": "Operation could not be completed as it results in exceeding approved "
                "standardDSv2Family Cores quota.",
            },
            "ARM answered 400: QuotaExceeded: Operation could not be completed",
        ),
        (
            {"operation_status": "Failed", "message": "Allocation failed: no capacity for STANDARD_DS3_V2"},
            "the start operation failed in Azure ML",
        ),
    ],
    ids=["quota", "capacity"],
)
def test_a_failed_start_is_reported_with_arms_message(fleet: Bench, fault: dict[str, Any], words: str) -> None:
    fleet.arm.add_fault({"method": "POST", "path_regex": r"/computes/ci-window-stopped/start$", **fault})
    _set_last_evaluated(fleet.host, datetime.now(UTC) - timedelta(minutes=30))
    report = _reconcile(fleet.host)
    result = _by_name(report)["ci-window-stopped"]
    assert result["outcome"] == "failed"
    assert words in result["error"]
    assert report["totals"]["failed"] == 1
    assert fleet.arm.state_of(WS, "ci-window-stopped") == "Stopped"


def test_the_nightly_shutdown_skips_scheduled_instances(fleet: Bench) -> None:
    response = fleet.host.request("POST", "/api/shutdown", json={})
    assert response.status_code == 202
    status = fleet.host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=60)
    results = _by_name(_saved(fleet.host, status))
    assert results["ci-untagged"]["outcome"] == "stopped"
    assert results["ci-loose"]["outcome"] == "skipped"
    assert results["ci-loose"]["reason"] == "follows schedule later-loose (compute-schedule)"
    # A schedule tag naming no schedule: the nightly policy applies, and the reason names the tag (issue 19).
    assert results["ci-typo"]["outcome"] == "stopped"
    assert results["ci-typo"]["reason"] == (
        "stop (Running, opt-out mode); tag compute-schedule=berlin-ofice names no schedule (known: berlin-office, "
        "later-loose, later-strict, now-window); nightly policy applies"
    )
    assert fleet.arm.state_of(WS, "ci-window-running") == "Running"
    # An untagged stop saves until the next nightly run (SHUTDOWN_SCHEDULE "0 0 0 1 1 *": next 1 January).
    untagged = results["ci-untagged"]
    at = datetime.fromisoformat(status["output"]["started_at"])  # the summary has the report's head
    new_year = datetime(at.year + 1, 1, 1, tzinfo=UTC)
    assert untagged["hourly_price"] == 0.293 and untagged["price_source"] == "retail"
    assert untagged["estimated_hours_saved"] == pytest.approx((new_year - at).total_seconds() / 3600, abs=0.02)


def test_an_invalid_schedule_is_reported_and_nothing_else_stops(bench: Bench) -> None:
    bench.arm.reload(FLEET)
    broken = [{**SCHEDULES[0], "periods": [{"days": "mon-fri", "begin": "8am", "end": "19:00"}]}]
    # Also a negotiated rate for DS3_v2: the stop of ci-untagged is valued at it.
    settings = {
        **bench.settings,
        "COMPUTE_SCHEDULES": json.dumps(broken),
        "PRICE_OVERRIDES": '{"Standard_DS3_v2": 0.5}',
    }
    host = start_devhost(
        bench.data / "broken", settings, workers=1, azurite=False, azurite_port=bench.host.azurite_port
    )
    try:
        report = _reconcile(host)
        assert "schedule 'berlin-office', field 'periods[0].begin'" in report["schedules_error"]
        assert "HH:MM" in report["schedules_error"]
        assert {r["outcome"] for r in report["instances"]} == {"skipped"}
        assert all("left alone: COMPUTE_SCHEDULES" in r["reason"] for r in report["instances"])
        listed = host.request("GET", "/api/schedules").json()
        assert "periods[0].begin" in listed["error"]
        # The nightly shutdown still runs: untagged instances stop, scheduled ones are left alone.
        response = host.request("POST", "/api/shutdown", json={})
        status = host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=60)
        assert status["runtimeStatus"] == "Completed"
        untagged = _by_name(_saved(host, status))["ci-untagged"]
        assert untagged["outcome"] == "stopped"
        assert (untagged["hourly_price"], untagged["price_source"]) == (0.5, "override")
        assert untagged["estimated_savings"] == round(0.5 * untagged["estimated_hours_saved"], 2)
        assert bench.arm.state_of(WS, "ci-strict") == "Running"
    finally:
        host.stop()


def test_a_5000_digit_number_in_the_schedules_is_a_clear_error_everywhere(bench: Bench) -> None:
    """Issue 19: it gave 500 on /api/schedules, the preview and the dashboard, and every reconcile failed."""
    bench.arm.reload(FLEET)
    broken = json.dumps([{**SCHEDULES[0], "enforced": "@N@"}]).replace('"@N@"', "9" * 5000)
    settings = {**bench.settings, "COMPUTE_SCHEDULES": broken}
    host = start_devhost(
        bench.data / "digits", settings, workers=1, azurite=False, azurite_port=bench.host.azurite_port
    )
    try:
        words = "schedule 'berlin-office', field 'enforced': expected true or false, got number 99999"
        listed = host.request("GET", "/api/schedules")
        assert listed.status_code == 200 and words in listed.json()["error"]
        preview = host.request("POST", "/api/schedules/preview", json={"at": "2026-03-27T07:00:30Z"})
        assert preview.status_code == 200 and words in preview.json()["error"]
        page = host.request("GET", "/api/dashboard")
        assert page.status_code == 200 and words in html.unescape(page.text)
        report = _reconcile(host)
        assert words in report["schedules_error"]
        assert {r["outcome"] for r in report["instances"]} == {"skipped"}
    finally:
        host.stop()


def test_monthly_savings_sum_the_saved_reports(fleet: Bench) -> None:
    container = _container(fleet.host)
    for name, savings, dry_run in (
        ("shutdown/2020/01/05/a.json", 1.25, False),
        ("reconcile/2020/01/06/b.json", 2.5, False),
        ("reconcile/2020/01/07/c.json", 100.0, True),  # a dry run saved nothing
        ("shutdown/2020/02/01/d.json", 7.0, False),  # another month
    ):
        report = {"dry_run": dry_run, "totals": {"stopped": 1, "estimated_savings": savings, "currency": "USD"}}
        container.get_blob_client(name).upload_blob(json.dumps(report), overwrite=True)
    response = fleet.host.request("GET", "/api/savings?month=2020-01")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["estimated_savings"], body["currency"], body["reports"]) == (3.75, "USD", 2)
    assert body["by_kind"] == {"shutdown": 1.25, "reconcile": 2.5}
    bad = fleet.host.request("GET", "/api/savings?month=2020-13")
    assert bad.status_code == 400 and bad.json()["field"] == "month"
    # This month: at least what a reconcile that stops ci-strict just saved.
    _set_last_evaluated(fleet.host, datetime.now(UTC) - timedelta(minutes=1))
    saved = _reconcile(fleet.host)["totals"]["estimated_savings"]
    month = datetime.fromisoformat(_reconcile(fleet.host, dry_run=True)["started_at"]).strftime("%Y-%m")
    assert fleet.host.request("GET", f"/api/savings?month={month}").json()["estimated_savings"] >= saved > 0


def test_the_minute_timer_reconciles_by_itself(bench: Bench) -> None:
    bench.arm.reload(FLEET)
    _set_last_evaluated(bench.host, None)
    # Only the enforced schedule: its Running instance is outside its period, so the first tick stops it.
    settings = {
        **bench.settings,
        "RECONCILE_TIMER": "true",
        "COMPUTE_SCHEDULES": json.dumps([s for s in SCHEDULES if s["name"] == "later-strict"]),
    }
    host = start_devhost(bench.data / "timer", settings, workers=1, azurite=False, azurite_port=bench.host.azurite_port)
    try:
        deadline = time.monotonic() + 150  # the next minute tick, and the worker's first import of the SDK
        while bench.arm.state_of(WS, "ci-strict") != "Stopped" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert bench.arm.state_of(WS, "ci-strict") == "Stopped", host.log_text()[-3000:]
        assert bench.arm.state_of(WS, "ci-strict-job") == "JobRunning"
        assert bench.arm.state_of(WS, "ci-loose") == "Running"  # its schedule is not configured on this host
        assert "reconcile started: reconcile-" in host.log_text()
    finally:
        host.stop()
