"""The heads-up's links through devhost, end to end: the notices arrive at the test's own webhook before the stop
with one link per instance; a GET changes nothing; a POST postpones that instance alone, which is then stopped after
its new time; forged and spent links are refused. The orchestration that waits is tests/notice_app's stand-in of the
run's workspace orchestration (same instance id, same shared functions), on the real Durable engine: its wait is a
durable timer raced with the external event `notice` that the link's POST raises through the Durable client binding.
The same in Chromium: open the link, press the button, see the confirmation.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devhost.standins.notify import NotifySink
from shared.compute.postponements import record_blob
from shared.compute.run_ids import workspace_key_hash
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.browser import CHROMIUM, INSTALL, press_button
from tests.helpers.storage import blob_service

pytestmark = pytest.mark.integration

WS = "0a1b2c3d-0000-4000-8000-00000000d23a/rg-ml/ws-heads-up"
SCREENSHOT = APP_ROOT / "reports" / "notice-confirmation.png"


@dataclass
class Site:
    host: RunningHost
    hook: NotifySink


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with NotifySink() as hook:  # the test's own webhook, on loopback
        settings = {
            "DATA_STORAGE": "UseDevelopmentStorage=true",
            "NOTIFY_CHANNELS": json.dumps([{"name": "test-hook", "kind": "webhook", "url": f"{hook.url}/hook"}]),
            "POSTPONE_MAX_HOURS": "1",
        }
        host = start_devhost(
            tmp_path_factory.mktemp("notices"), settings, script_root=APP_ROOT / "tests" / "notice_app", workers=1
        )
        try:
            yield Site(host, hook)
        finally:
            host.stop()


def _start(site: Site, stops: dict[str, datetime]) -> tuple[str, dict[str, str]]:
    """Start a run; returns its status URL and, once the heads-up arrived, each instance's link (the tests' instance
    names are their own, so the message is found by them)."""
    body = {
        "run_id": f"run-{uuid.uuid4().hex[:10]}",
        "workspace": WS,
        "stops": [
            {"name": n, "stop_at": at.isoformat(), "reason": "stop (Running, opt-out mode)", "tags": {"owner": "ana"}}
            for n, at in stops.items()
        ],
    }
    response = site.host.request("POST", "/api/test/notice-run", data=json.dumps(body))
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in site.hook.received("webhook"):
            got = {n["instance"]: n["links"]["review"] for n in message.body["notices"]}
            if set(got) == set(stops):
                return response.json()["statusQueryGetUri"], got
        time.sleep(0.1)
    raise AssertionError(f"no heads-up arrived: {site.hook.snapshot()}\n{site.host.log_text()[-3000:]}")


def _record_etag(site: Site, link: str) -> str:
    """The ETag of the notice record the link's POST writes (its run is in the token's claims, readable, signed)."""
    claims = link.rsplit("/", 1)[1].split(".")[1]
    run = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["r"]
    blob = blob_service(site.host).get_blob_client("reports", record_blob(run, workspace_key_hash(WS)))
    return str(blob.get_blob_properties().etag)


def _forged(link: str) -> str:
    head, signature = link.rsplit(".", 1)
    return f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def test_notice_get_post_postpone_forged_and_spent_links(site: Site) -> None:
    start = datetime.now(UTC)
    planned = start + timedelta(seconds=12)
    status_url, links = _start(site, {"ci-keep": planned, "ci-go": planned})
    assert datetime.now(UTC) < planned  # the heads-up arrived before the stop
    assert links["ci-keep"] != links["ci-go"] and "code=" not in links["ci-keep"]  # one link each, no function key

    before = _record_etag(site, links["ci-keep"])
    page = requests.get(links["ci-keep"], timeout=10)
    assert page.status_code == 200 and "ci-keep" in page.text and WS in page.text and "ana" in page.text
    assert "Stop it now" in page.text
    assert _record_etag(site, links["ci-keep"]) == before  # a GET (a mail scanner, a preview) changes nothing

    postponed = requests.post(links["ci-keep"], data={"action": "postpone", "minutes": "1"}, timeout=10)
    assert postponed.status_code == 200 and "keeps running until" in postponed.text, postponed.text
    again = requests.post(links["ci-keep"], data={"action": "postpone", "minutes": "1"}, timeout=10)
    assert again.status_code == 200 and "nothing changed" in again.text

    for method in ("GET", "POST"):
        forged = requests.request(method, _forged(links["ci-go"]), data={"action": "stop-now"}, timeout=10)
        assert forged.status_code == 403 and "not one the app sent" in forged.text
    bad = requests.post(links["ci-go"], data={"action": "postpone", "minutes": "99999"}, timeout=10)
    assert bad.status_code == 400 and "outside 1 to 60" in bad.text
    huge = requests.post(links["ci-go"], data=b"action=stop-now&pad=" + b"x" * 200_000, timeout=10)
    assert huge.status_code == 400 and "a choice takes fewer than 2048" in huge.text

    done = site.host.wait_for_completion(status_url, timeout=150, interval=0.5)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    stopped = {s["name"]: datetime.fromisoformat(s["at"]) for s in output["stopped"]}
    assert planned <= stopped["ci-go"] < planned + timedelta(seconds=20)  # at its time, not held up by the click
    assert stopped["ci-keep"] >= planned + timedelta(minutes=1)  # after its new time, and only that instance
    assert output["events"] >= 1  # the click woke the orchestration (event raised through the client binding)

    for method in ("GET", "POST"):
        spent = requests.request(method, links["ci-go"], data={"action": "postpone", "minutes": "5"}, timeout=10)
        assert spent.status_code == 410 and "spent" in spent.text


@pytest.mark.skipif(CHROMIUM is None, reason=f"needs Chromium: {INSTALL}")
def test_a_person_opens_the_link_presses_stop_now_and_sees_the_confirmation(site: Site) -> None:
    planned = datetime.now(UTC) + timedelta(minutes=10)
    status_url, links = _start(site, {"ci-click": planned})
    SCREENSHOT.unlink(missing_ok=True)
    visit = press_button(links["ci-click"], "Stop it now", screenshot=SCREENSHOT)
    assert visit.title == "Done", visit
    assert "ci-click will be stopped within a minute or two." in visit.text
    assert SCREENSHOT.stat().st_size > 5_000
    # Stopped now, not in 10 minutes: the click's event woke the waiting orchestration.
    done = site.host.wait_for_completion(status_url, timeout=60, interval=0.5)
    assert done["output"]["events"] == 1 and [s["name"] for s in done["output"]["stopped"]] == ["ci-click"]
    assert datetime.fromisoformat(done["output"]["stopped"][0]["at"]) < planned - timedelta(minutes=9)


def test_a_person_keeps_an_instance_longer_with_a_preset_button_in_chromium(site: Site) -> None:
    if CHROMIUM is None:
        pytest.skip(f"needs Chromium: {INSTALL}")
    planned = datetime.now(UTC) + timedelta(minutes=10)
    status_url, links = _start(site, {"ci-look": planned})
    until = planned + timedelta(minutes=30)
    shown = f"{until:%H:%M}" if until.date() == planned.date() else f"{until:%a %H:%M}"
    visit = press_button(links["ci-look"], f"Keep it until {shown} UTC (+30 min)")
    assert visit.title == "Done" and "ci-look keeps running until" in visit.text
    requests.post(links["ci-look"], data={"action": "stop-now"}, timeout=10)
    site.host.wait_for_completion(status_url, timeout=60, interval=0.5)
