"""The heads-up through the real compute run (issue 23), end to end: the app on devhost, its MLClient against the ARM
stand-in of this process, a webhook of the test's own (the notification sink on loopback).

`POST /api/shutdown` with a short `notice_minutes`: each owner gets one message before the stop, listing their
instances with one link each; a GET of a link changes nothing; a POST postpones that instance alone, which the run
stops after its new time (the others at theirs, one POST each); forged and spent links are refused; every report
entry carries `notice`. The same in Chromium: open the link, press the button, see the confirmation. A channel that
fails is retried and reported and never holds a stop back; a malformed NOTIFY_CHANNELS is reported and every stop is
made without waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.notify import NotifySink
from devhost.standins.tls import LocalTls, make_local_tls
from shared.compute.postponements import record_blob
from shared.compute.run_ids import workspace_key_hash
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.browser import CHROMIUM, INSTALL, press_button
from tests.helpers.standins import ca_bundle_with, compute_settings, on_standin_clock, stop_times
from tests.helpers.storage import blob_service

pytestmark = pytest.mark.integration

SUB = "0a1b2c3d-0000-4000-8000-0000000023a1"
WS = f"{SUB}/rg-ml/ws-heads-up"
SCREENSHOT = APP_ROOT / "reports" / "notice-confirmation.png"
DURABLE = "/runtime/webhooks/durabletask"


def _instance(
    name: str, state: str = "Running", owner: str | None = None, creator: str | None = None
) -> dict[str, Any]:
    inner: dict[str, Any] = {"state": state, "vmSize": "STANDARD_DS3_V2"}
    if creator:
        inner["createdBy"] = {"userName": creator, "userOrgId": "org", "userId": "u-1"}
    return {
        "name": name,
        "tags": {"owner": owner} if owner else {},
        "properties": {"computeType": "ComputeInstance", "properties": inner},
    }


FLEET: dict[str, Any] = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-ml",
            "name": "ws-heads-up",
            "computes": [
                _instance("ci-keep", owner="ana"),
                _instance("ci-go", owner="ana"),
                _instance("ci-bob", owner="bob"),
                _instance("ci-carol", creator="carol@contoso.com"),  # no owner tag: ARM's createdBy is told
                _instance("ci-off", "Stopped", owner="ana"),
            ],
        }
    ],
}
STOPPED = {"ci-keep", "ci-go", "ci-bob", "ci-carol"}


@dataclass
class Bench:
    host: RunningHost
    arm: ArmStandin
    hook: NotifySink
    bad: Future[RunningHost]  # a devhost whose NOTIFY_CHANNELS is malformed (booted meanwhile)
    bad_arm: ArmStandin


def _settings(identity: IdentityStandin, arm: ArmStandin, ca_bundle: Path, channels: list[Any]) -> dict[str, str]:
    return {
        **compute_settings(identity, arm, FLEET, ca_bundle),
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",  # never during a test
        "RECONCILE_TIMER": "false",
        "SHUTDOWN_POLL_SECONDS": "1",
        "SHUTDOWN_STOP_TIMEOUT_SECONDS": "30",
        "AML_POLLING_INTERVAL_SECONDS": "0.2",
        "AML_HTTP_BACKOFF_SECONDS": "0.05",
        "PRICE_OVERRIDES": '{"STANDARD_DS3_V2": 0.3}',
        "NOTIFY_CHANNELS": json.dumps(channels),
        "NOTICE_MINUTES": "0.1",
        "POSTPONE_MAX_HOURS": "1",
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    data = tmp_path_factory.mktemp("heads-up")
    tls: LocalTls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    with (
        IdentityStandin() as identity,
        ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid) as arm,
        ArmStandin(FLEET, tls, transition_seconds=0.5, token_validator=identity.is_valid) as bad_arm,
        NotifySink() as hook,  # the test's own webhook, on loopback
        ThreadPoolExecutor(1) as pool,
    ):
        good = [{"name": "test-hook", "kind": "webhook", "url": f"{hook.url}/hook"}]
        malformed = [*good, {"name": "pager", "kind": "fax", "url": f"{hook.url}/fax"}]
        host = start_devhost(data / "devhost", _settings(identity, arm, ca_bundle, good), workers=1)
        bad = pool.submit(
            start_devhost,
            data / "bad-devhost",
            _settings(identity, bad_arm, ca_bundle, malformed),
            workers=1,
            azurite=False,
            azurite_port=host.azurite_port,
        )
        try:
            yield Bench(host, arm, hook, bad, bad_arm)
        finally:
            host.stop()
            if bad.exception() is None:
                bad.result().stop()


@pytest.fixture
def fresh(bench: Bench) -> Bench:
    _end_runs(bench.host)  # a run a failed test left waiting would stop instances in the next test's fleet
    bench.arm.reload(FLEET)
    bench.hook.clear()
    return bench


def _end_runs(host: RunningHost) -> None:
    """Terminate every orchestration still running (sub-orchestrations included: the API lists them all)."""
    listed = host.request("GET", f"{DURABLE}/instances?runtimeStatus=Running,Pending&top=1000")
    assert listed.status_code == 200, listed.text
    for instance in listed.json():
        host.request("POST", f"{DURABLE}/instances/{instance['instanceId']}/terminate?reason=test+cleanup")


# --- helpers ------------------------------------------------------------------------------------------------------


def _start(host: RunningHost, body: dict[str, Any]) -> str:
    response = host.request("POST", "/api/shutdown", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["statusQueryGetUri"])


def _notices(hook: NotifySink, expected: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Every notice of the webhook messages once `expected` instances were announced (each message an owner's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = hook.received("webhook")
        found = [dict(n, message_at=m.at) for m in messages for n in m.body["notices"]]
        if {n["instance"] for n in found} >= expected:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no heads-up for {expected}: {hook.snapshot()}")


def _report(host: RunningHost, status: dict[str, Any]) -> dict[str, Any]:
    blob = status["output"]["report_blob"].split("/", 1)[1]
    data = blob_service(host).get_blob_client("reports", blob).download_blob().readall()
    report: dict[str, Any] = json.loads(data)
    return report


def _record_etag(host: RunningHost, run_id: str) -> str:
    blob = blob_service(host).get_blob_client("reports", record_blob(run_id, workspace_key_hash(WS)))
    return str(blob.get_blob_properties().etag)


def _record_once_sent(host: RunningHost, run_id: str, names: set[str], timeout: float = 15) -> str:
    """The record's ETag once the sender recorded its delivery of `names` (it writes after the channels took them:
    a message can arrive before that write)."""
    blob = blob_service(host).get_blob_client("reports", record_blob(run_id, workspace_key_hash(WS)))
    deadline = time.monotonic() + timeout
    while True:
        downloaded = blob.download_blob()
        instances = json.loads(downloaded.readall())["instances"]
        if all(instances.get(name, {}).get("sent_at") for name in names):
            return str(downloaded.properties.etag)
        assert time.monotonic() < deadline, f"the sender never recorded its delivery: {instances}"
        time.sleep(0.1)


def _forged(link: str) -> str:
    head, signature = link.rsplit(".", 1)
    return f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the nightly stop's heads-up, end to end -----------------------------------------------------------------------


def test_owners_are_told_before_the_stop_and_a_postponed_instance_alone_is_stopped_after_its_new_time(
    fresh: Bench,
) -> None:
    host, arm, hook = fresh.host, fresh.arm, fresh.hook
    status_url = _start(host, {"notice_minutes": 0.25})
    run_id = status_url.split("/instances/", 1)[1].split("?", 1)[0]
    notices = _notices(hook, STOPPED)
    links = {n["instance"]: n["links"]["review"] for n in notices}
    stop_at = {n["instance"]: _time(n["stop_at"]) for n in notices}
    planned = stop_at["ci-go"]
    assert set(stop_at.values()) == {planned}  # the run's start + notice_minutes, for every stop
    assert all(_time(n["message_at"]) < planned for n in notices)  # the heads-up came before the stop
    assert arm.requests("POST") == []
    # One message per owner, listing all their instances, one link each, no function key in any.
    owners = {m.body["notices"][0]["owner"]: sorted(n["instance"] for n in m.body["notices"]) for m in hook.received()}
    assert owners == {"ana": ["ci-go", "ci-keep"], "bob": ["ci-bob"], "carol@contoso.com": ["ci-carol"]}
    assert len(set(links.values())) == 4 and not any("code=" in link for link in links.values())

    before = _record_once_sent(host, run_id, STOPPED)
    page = requests.get(links["ci-keep"], timeout=10)
    assert page.status_code == 200 and "ci-keep" in page.text and WS in page.text and "ana" in page.text
    assert _record_etag(host, run_id) == before  # a GET (a mail scanner, a link preview) changes nothing

    postponed = requests.post(links["ci-keep"], data={"action": "postpone", "minutes": "1"}, timeout=10)
    assert postponed.status_code == 200 and "ci-keep keeps running until" in postponed.text, postponed.text
    again = requests.post(links["ci-keep"], data={"action": "postpone", "minutes": "1"}, timeout=10)
    assert again.status_code == 200 and "nothing changed" in again.text
    for method in ("GET", "POST"):
        forged = requests.request(method, _forged(links["ci-go"]), data={"action": "stop-now"}, timeout=10)
        assert forged.status_code == 403 and "not one the app sent" in forged.text
    for minutes, words in (("0", "outside 1 to 60"), ("99999", "outside 1 to 60"), ("abc", "not a whole number")):
        bad = requests.post(links["ci-go"], data={"action": "postpone", "minutes": minutes}, timeout=10)
        assert bad.status_code == 400 and words in bad.text, (minutes, bad.text)
    huge = requests.post(links["ci-go"], data=b"action=stop-now&pad=" + b"x" * 200_000, timeout=10)
    assert huge.status_code == 400 and "a choice takes fewer than 2048" in huge.text
    assert arm.requests("POST") == []  # refused choices changed nothing: no stop was made early

    # While the run waits: the dashboard shows the announced stops, their countdown and ana's choice.
    dashboard = host.request("GET", "/api/dashboard").text
    section = dashboard[dashboard.index("<section id=pending>") :]
    assert "ci-keep" in section and "postponed to" in section and "by ana" in section, section[:2000]

    while datetime.now(UTC) < planned + timedelta(seconds=8):
        time.sleep(0.5)
    spent = requests.get(links["ci-go"], timeout=10)  # ci-go is being (or was) stopped: its link is spent
    assert spent.status_code == 410 and "spent" in spent.text
    kept = requests.get(links["ci-keep"], timeout=10)
    assert kept.status_code == 200 and "Kept running until" in kept.text
    assert set(stop_times(arm)) == {"ci-go", "ci-bob", "ci-carol"}  # ci-keep waits alone

    done = host.wait_for_completion(status_url, timeout=150, interval=0.5)
    assert done["runtimeStatus"] == "Completed", done
    stops = stop_times(arm)
    assert {name: len(times) for name, times in stops.items()} == dict.fromkeys(STOPPED, 1)  # one POST each
    for name in ("ci-go", "ci-bob", "ci-carol"):
        assert on_standin_clock(planned) - 1 <= stops[name][0] < on_standin_clock(planned) + 15, name  # at its time
    assert stops["ci-keep"][0] >= on_standin_clock(planned + timedelta(minutes=1)) - 1  # after its new time
    assert arm.states()[(WS, "ci-keep")] == "Stopped"

    report = _report(host, done)
    entries = {e["name"]: e for e in report["instances"]}
    assert {name for name, e in entries.items() if e["outcome"] == "stopped"} == STOPPED
    assert entries["ci-off"]["notice"] is None  # nothing to stop, nothing announced
    for name in STOPPED:
        notice = entries[name]["notice"]
        assert set(notice) == {"sent_at", "channels", "postponed_until", "postponed_by", "error"}
        assert notice["channels"] == ["test-hook"] and notice["error"] is None
        assert _time(notice["sent_at"]) < planned
    keep = entries["ci-keep"]["notice"]
    assert (_time(keep["postponed_until"]), keep["postponed_by"]) == (planned + timedelta(minutes=1), "ana")
    assert entries["ci-go"]["notice"]["postponed_until"] is None
    heads_up = done["output"]["heads_up"]
    assert (heads_up["minutes"], heads_up["owners"], heads_up["messages_sent"], heads_up["error"]) == (0.25, 3, 3, None)
    for method in ("GET", "POST"):  # the run is over: every link of it is spent
        over = requests.request(method, links["ci-keep"], data={"action": "postpone", "minutes": "5"}, timeout=10)
        assert over.status_code == 410
    assert len(hook.received()) == 3  # nothing was sent twice


@pytest.mark.skipif(CHROMIUM is None, reason=f"needs Chromium: {INSTALL}")
def test_a_person_opens_the_link_in_chromium_presses_stop_now_and_the_run_stops_it_at_once(fresh: Bench) -> None:
    status_url = _start(fresh.host, {"notice_minutes": 10, "include": ["ci-go"]})
    link = {n["instance"]: n["links"]["review"] for n in _notices(fresh.hook, {"ci-go"})}["ci-go"]
    planned = datetime.now(UTC) + timedelta(minutes=9)
    SCREENSHOT.unlink(missing_ok=True)
    visit = press_button(link, "Stop it now", screenshot=SCREENSHOT)
    assert visit.title == "Done", visit
    assert "ci-go will be stopped within a minute or two." in visit.text
    assert SCREENSHOT.stat().st_size > 5_000
    done = fresh.host.wait_for_completion(status_url, timeout=60, interval=0.5)
    entries = {e["name"]: e for e in _report(fresh.host, done)["instances"]}
    assert entries["ci-go"]["outcome"] == "stopped" and entries["ci-go"]["notice"]["postponed_by"] == "ana"
    assert datetime.now(UTC) < planned  # stopped long before its planned time: the click woke the run
    assert stop_times(fresh.arm).keys() == {"ci-go"}


@pytest.mark.skipif(CHROMIUM is None, reason=f"needs Chromium: {INSTALL}")
def test_a_person_keeps_an_instance_longer_with_a_preset_button_in_chromium(fresh: Bench) -> None:
    status_url = _start(fresh.host, {"notice_minutes": 10, "include": ["ci-bob"]})
    notice = _notices(fresh.hook, {"ci-bob"})[0]
    planned = _time(notice["stop_at"])
    until = planned + timedelta(minutes=30)
    shown = f"{until:%H:%M}" if until.date() == planned.date() else f"{until:%a %H:%M}"
    visit = press_button(notice["links"]["review"], f"Keep it until {shown} UTC (+30 min)")
    assert visit.title == "Done" and "ci-bob keeps running until" in visit.text, visit
    pending = fresh.host.request("GET", "/api/dashboard").text
    assert "postponed to" in pending and "by bob" in pending  # who postponed what, on the page
    requests.post(notice["links"]["review"], data={"action": "stop-now"}, timeout=10)  # end the run now
    done = fresh.host.wait_for_completion(status_url, timeout=60, interval=0.5)
    assert done["runtimeStatus"] == "Completed" and stop_times(fresh.arm).keys() == {"ci-bob"}


def test_a_failing_channel_is_retried_and_reported_and_never_holds_a_stop_back(fresh: Bench) -> None:
    fresh.hook.fail(r"^/hook$", 500, count=100)
    started = datetime.now(UTC)
    done = fresh.host.wait_for_completion(_start(fresh.host, {"notice_minutes": 0.25, "include": ["ci-go"]}), 90)
    stops = stop_times(fresh.arm)
    assert list(stops) == ["ci-go"] and stops["ci-go"][0] < on_standin_clock(started + timedelta(seconds=30))
    entry = {e["name"]: e for e in _report(fresh.host, done)["instances"]}["ci-go"]
    assert entry["outcome"] == "stopped"
    assert entry["notice"]["sent_at"] is None
    assert "channel test-hook failed after 4 attempts: HTTP 500" in entry["notice"]["error"]
    heads_up = done["output"]["heads_up"]
    assert (heads_up["messages_sent"], heads_up["messages_failed"]) == (0, 1)
    assert heads_up["failures"][0]["channel"] == "test-hook" and "HTTP 500" in heads_up["failures"][0]["error"]
    assert "/hook" not in json.dumps(done["output"]) and fresh.hook.url not in fresh.host.log_text()  # URL unsaid


def test_a_channel_that_fails_once_gets_the_message_once(fresh: Bench) -> None:
    fresh.hook.fail(r"^/hook$", 503, count=1, retry_after="1")
    done = fresh.host.wait_for_completion(_start(fresh.host, {"notice_minutes": 0.1, "include": ["ci-bob"]}), 90)
    assert [m.body["notices"][0]["instance"] for m in fresh.hook.received()] == ["ci-bob"]  # retried, once
    assert done["output"]["heads_up"]["messages_sent"] == 1


@pytest.mark.parametrize("body", [{"dry_run": True}, {"notice_minutes": 0}], ids=["dry-run", "no-notice"])
def test_a_dry_run_or_no_notice_announces_nothing_and_waits_for_nothing(fresh: Bench, body: dict[str, Any]) -> None:
    started = time.monotonic()
    done = fresh.host.wait_for_completion(_start(fresh.host, body), 60)
    assert fresh.hook.received() == []
    assert done["output"]["heads_up"] is None
    assert all(e["notice"] is None for e in _report(fresh.host, done)["instances"])
    if not body.get("dry_run"):
        assert set(stop_times(fresh.arm)) == STOPPED and time.monotonic() - started < 20  # at once, as before


def test_a_malformed_notify_channels_is_reported_and_every_stop_is_made_without_waiting(bench: Bench) -> None:
    host = bench.bad.result(timeout=120)
    bench.bad_arm.reload(FLEET)
    bench.hook.clear()
    started = time.monotonic()
    done = host.wait_for_completion(_start(host, {"notice_minutes": 30}), 60)
    assert done["runtimeStatus"] == "Completed"
    assert time.monotonic() - started < 30  # not 30 minutes: nothing waits for a heads-up that cannot be sent
    assert set(stop_times(bench.bad_arm)) == STOPPED  # no stop skipped
    error = done["output"]["heads_up"]["error"]
    assert "NOTIFY_CHANNELS[1].kind is 'fax': expected one of webhook, teams, slack, email" in error
    assert bench.hook.received() == []  # nothing sent, not even on the well-formed channel
    assert bench.hook.url not in json.dumps(done["output"])
