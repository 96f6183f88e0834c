"""The heads-up of the reconciler's schedule stops, end to end (issue 23): the minute timer's run NOTICE_MINUTES before
a stop boundary claims it ahead and announces it; the instances are stopped at the boundary, a postponed one after
the owner's choice, each exactly once, while the timer's other runs find the boundary held.

The app on devhost with its minute timer on, the ARM stand-in and a webhook of the test's own in this process; the
schedule's period ends at a minute boundary chosen when the module starts (so the test takes about 2.5 minutes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.notify import NotifySink
from devhost.standins.tls import make_local_tls
from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.standins import ca_bundle_with, compute_settings, on_standin_clock, stop_times
from tests.helpers.storage import blob_service

pytestmark = pytest.mark.integration

SUB = "0a1b2c3d-0000-4000-8000-0000000023b2"
WS = f"{SUB}/rg-ml/ws-office"
NOTICE_MINUTES = 1
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DURABLE = "/runtime/webhooks/durabletask"


def _boundary(now: datetime) -> datetime:
    """A minute boundary 95 s to 155 s away: devhost starts before the timer's run one NOTICE_MINUTES ahead of it."""
    boundary = (now + timedelta(seconds=95 + 59)).replace(second=0, microsecond=0)
    if boundary.hour == 0 and boundary.minute < 2:  # a period needs a begin before its end on the same day
        boundary = boundary.replace(minute=2)
    return boundary


def _instance(name: str, owner: str, schedule: str | None = "closing") -> dict[str, Any]:
    tags = {"owner": owner, **({"compute-schedule": schedule} if schedule else {})}
    return {
        "name": name,
        "tags": tags,
        "properties": {
            "computeType": "ComputeInstance",
            "properties": {"state": "Running", "vmSize": "STANDARD_DS3_V2"},
        },
    }


FLEET: dict[str, Any] = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-ml",
            "name": "ws-office",
            "computes": [
                _instance("ci-a", "ana"),
                _instance("ci-late", "ana"),
                _instance("ci-b", "bob"),
                _instance("ci-free", "bob", schedule=None),  # follows no schedule: the reconciler leaves it alone
            ],
        }
    ],
}
SCHEDULED = {"ci-a", "ci-late", "ci-b"}


@dataclass
class Bench:
    host: RunningHost
    arm: ArmStandin
    hook: NotifySink
    boundary: datetime


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    data = tmp_path_factory.mktemp("heads-up-schedules")
    tls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    boundary = _boundary(datetime.now(UTC))
    schedule = {
        "name": "closing",
        "timezone": "UTC",
        "periods": [{"days": DAYS[boundary.weekday()], "begin": "00:00", "end": f"{boundary:%H:%M}"}],
    }
    with (
        IdentityStandin() as identity,
        ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid) as arm,
        NotifySink() as hook,
    ):
        settings = {
            **compute_settings(identity, arm, FLEET, ca_bundle),
            "DATA_STORAGE": "UseDevelopmentStorage=true",
            "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
            "SHUTDOWN_POLL_SECONDS": "1",
            "AML_HTTP_BACKOFF_SECONDS": "0.05",
            "PRICE_OVERRIDES": '{"STANDARD_DS3_V2": 0.3}',
            "COMPUTE_SCHEDULES": json.dumps([schedule]),
            "RECONCILE_TIMER": "true",  # the minute timer runs the reconciler, as in production
            "NOTIFY_CHANNELS": json.dumps([{"name": "test-hook", "kind": "webhook", "url": f"{hook.url}/hook"}]),
            "NOTICE_MINUTES": str(NOTICE_MINUTES),
            "POSTPONE_MAX_HOURS": "1",
        }
        host = start_devhost(data / "devhost", settings, workers=1)
        try:
            yield Bench(host, arm, hook, boundary)
        finally:
            host.stop()


def _wait_until(moment: datetime) -> None:
    while datetime.now(UTC) < moment:
        time.sleep(0.2)


def test_a_schedule_stop_is_announced_notice_minutes_ahead_and_made_at_the_boundary_exactly_once(bench: Bench) -> None:
    host, arm, hook, boundary = bench.host, bench.arm, bench.hook, bench.boundary
    deadline = boundary - timedelta(seconds=30)
    while not hook.received("webhook") and datetime.now(UTC) < deadline:
        time.sleep(0.2)
    messages = hook.received("webhook")
    assert messages, f"no heads-up by {deadline}: {host.log_text()[-3000:]}"
    notices = {n["instance"]: n for m in messages for n in m.body["notices"]}
    assert set(notices) == SCHEDULED  # the schedule's followers, not ci-free
    first = min(datetime.fromisoformat(m.at.replace("Z", "+00:00")) for m in messages)
    # The timer's run at boundary - NOTICE_MINUTES claimed the stop ahead and announced it then.
    ahead = boundary - timedelta(minutes=NOTICE_MINUTES)
    assert ahead <= first < ahead + timedelta(seconds=20)
    assert {datetime.fromisoformat(n["stop_at"]) for n in notices.values()} == {boundary}
    assert arm.requests("POST") == []  # nothing is stopped before the boundary

    late = notices["ci-late"]["links"]["review"]
    chose = requests.post(late, data={"action": "postpone", "minutes": "1"}, timeout=10)
    assert chose.status_code == 200, chose.text

    _wait_until(boundary + timedelta(seconds=12))
    stops = stop_times(arm)
    assert set(stops) == {"ci-a", "ci-b"}  # at the boundary; ci-late kept running as ana chose
    assert all(on_standin_clock(boundary) - 1 <= times[0] for times in stops.values())
    assert arm.states()[(WS, "ci-late")] == "Running"

    now = requests.post(late, data={"action": "stop-now"}, timeout=10)
    assert now.status_code == 200 and "will be stopped within a minute" in now.text
    stopped_late = time.monotonic() + 30
    while "ci-late" not in stop_times(arm) and time.monotonic() < stopped_late:
        time.sleep(0.2)
    assert "ci-late" in stop_times(arm)

    # The run that claimed the boundary ends; its report carries each heads-up; the progress is past the boundary.
    run = _claiming_run(host, boundary)
    done = host.wait_for_completion(f"{host.base_url}{DURABLE}/instances/{run}?code={host.key}", timeout=60)
    assert done["runtimeStatus"] == "Completed", done
    summary = done["output"]
    assert summary["heads_up"]["minutes"] == NOTICE_MINUTES and summary["heads_up"]["messages_sent"] == 2
    blob = summary["report_blob"].split("/", 1)[1]
    report = json.loads(blob_service(host).get_blob_client("reports", blob).download_blob().readall())
    entries = {e["name"]: e for e in report["instances"]}
    assert {n for n, e in entries.items() if e["outcome"] == "stopped"} == SCHEDULED
    assert entries["ci-late"]["notice"]["postponed_by"] == "ana"
    assert entries["ci-a"]["notice"]["channels"] == ["test-hook"]
    state = json.loads(
        blob_service(host).get_blob_client("reports", f"reconcile/state/{WS.lower()}.json").download_blob().readall()
    )
    assert datetime.fromisoformat(state["schedules"]["closing"]["done_through"]) == boundary

    # Exactly once: a reconcile now (and every timer's run) finds the boundary acted on.
    again = host.request("POST", "/api/reconcile", json={})
    assert again.status_code == 202
    assert host.wait_for_completion(again.json()["statusQueryGetUri"], timeout=60)["runtimeStatus"] == "Completed"
    assert {name: len(times) for name, times in stop_times(arm).items()} == dict.fromkeys(SCHEDULED, 1)
    assert len(hook.received("webhook")) == 2  # ana's message and bob's, once each


def _claiming_run(host: RunningHost, boundary: datetime) -> str:
    """The timer's run of the minute NOTICE_MINUTES before the boundary (its instance id names the minute)."""
    minute = boundary - timedelta(minutes=NOTICE_MINUTES)
    return f"reconcile-{minute:%Y%m%dT%H%M}"
