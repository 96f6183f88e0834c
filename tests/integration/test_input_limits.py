"""Hostile input through devhost: number extremes answer 400 naming the field on every endpoint, an Event Grid
delivery is checked whole before anything starts, a forged event for another storage host starts nothing, and
no key, token or raw control character reaches the log."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.scoring.events import scoring_instance_id
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.events import ACCOUNT, blob_created_event, blob_event, deliver
from tests.helpers.scoring import DURABLE, runs
from tests.helpers.storage import INPUT, upload

pytestmark = pytest.mark.integration

WORKSPACES = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]["AML_WORKSPACES"]
BIG = "9" * 5000
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
EXTREMES = {"integer past the digit limit": BIG, "float overflowing to inf": "1e400", "NaN literal": "NaN"}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """No blob relay: runs start only from the deliveries the tests make."""
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "AML_WORKSPACES": WORKSPACES,
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
    }
    running = start_devhost(tmp_path_factory.mktemp("input-limits"), settings, workers=1)
    yield running
    running.stop()


def _post(host: RunningHost, path: str, body: str, **headers: str) -> Any:
    return host.request(
        "POST", path, data=body.encode(), headers={"Content-Type": "application/json", **headers}, timeout=60
    )


def _error_text(response: Any) -> str:
    body = response.json()
    return str(body.get("error") or body.get("ExceptionMessage"))


# --- JSON number extremes: 400 naming the field, never 500 -----------------------------------------------------


def _event_with_size(number: str) -> str:
    event = blob_event_text(contentLength="@@")
    return event.replace('"@@"', number)


def blob_event_text(**data: Any) -> str:
    event = blob_created_event(f"http://127.0.0.1/{ACCOUNT}", INPUT, "x.csv", "0x1", 16, event_id="e1", topic="t")
    event["data"].update(data)
    return json.dumps([event])


ENDPOINTS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    # name: (path, body with @@ for the number, field named in the answer, headers)
    "score": ("/api/score", '{"rows": [{"height": 150}, {"height": @@}]}', "rows[1].height", {}),
    "scoring": ("/api/scoring", '{"container": "incoming", "name": "a.csv", "force": @@}', "force", {}),
    "shutdown": ("/api/shutdown", '{"dry_run": @@}', "dry_run", {}),
    "event grid webhook": (
        "/runtime/webhooks/eventgrid?functionName=on_blob_created",
        "",
        "events[0].data.contentLength",
        {"aeg-event-type": "Notification"},
    ),
    "durable start": (
        f"{DURABLE}/orchestrators/scoring_orchestrator",
        '{"request": {"size": @@}}',
        "input.request.size",
        {},
    ),
    "durable raise event": (f"{DURABLE}/instances/nobody/raiseEvent/go", "[1, @@]", "data[1]", {}),
}


@pytest.mark.parametrize("extreme", EXTREMES, ids=list(EXTREMES))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=list(ENDPOINTS))
def test_number_extremes_answer_400_naming_the_field(host: RunningHost, endpoint: str, extreme: str) -> None:
    path, template, field, headers = ENDPOINTS[endpoint]
    number = EXTREMES[extreme]
    body = _event_with_size(number) if endpoint == "event grid webhook" else template.replace("@@", number)
    response = _post(host, path, body, **headers)
    assert response.status_code == 400, response.text[:500]
    message = _error_text(response)
    assert field in message, message
    assert len(response.content) < 2000  # the answer names the number, it does not echo 5,000 digits


def test_durable_list_refuses_a_huge_top_with_400(host: RunningHost) -> None:
    response = host.request("GET", f"{DURABLE}/instances?top={BIG}")
    assert response.status_code == 400
    assert "top" in response.json()["error"]


# --- an Event Grid delivery is checked whole before anything starts --------------------------------------------


def test_a_bad_event_time_refuses_the_whole_delivery_and_starts_nothing(host: RunningHost) -> None:
    names = [f"batch-{uuid.uuid4().hex[:8]}-{i}.csv" for i in range(4)]
    events = [blob_event(host, name, f"0x{i}", 16) for i, name in enumerate(names)]
    events[3]["eventTime"] = "x"
    response = deliver(host, events)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "events[3].eventTime: expected an ISO 8601 date-time, got 'x'"
    time.sleep(1.0)
    assert [run for name in names for run in runs(host, name)] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eventTime": 20261126}, "events[1].eventTime: expected an ISO 8601 date-time, got 20261126"),
        ({"eventTime": "2026-11-26"}, "events[1].eventTime: expected an ISO 8601 date-time, got '2026-11-26'"),
        ({"id": 7}, "events[1].id: expected a string, got 7"),
        # ISO 8601, but the Python worker's converter reads UTC only: refused up front, not a 500 per event.
        (
            {"eventTime": "2026-11-26T10:00:00+01:00"},
            "events[1].eventTime: the Python worker reads UTC date-times such as 2026-11-26T10:00:00Z, "
            "got '2026-11-26T10:00:00+01:00'",
        ),
    ],
)
def test_other_malformed_events_name_their_index_and_field(
    host: RunningHost, change: dict[str, Any], message: str
) -> None:
    name = f"malformed-{uuid.uuid4().hex[:8]}.csv"
    events = [blob_event(host, name, "0x1", 16), {**blob_event(host, name, "0x2", 16), **change}]
    response = deliver(host, events)
    assert response.status_code == 400 and response.json()["error"].startswith(message)
    time.sleep(0.5)
    assert runs(host, name) == []


def test_an_event_time_with_ticks_precision_is_accepted(host: RunningHost) -> None:
    name = f"ticks-{uuid.uuid4().hex[:8]}.txt"  # not a CSV: acknowledged and ignored, no run
    event = blob_event(host, name, "0x1", 16)
    event["eventTime"] = "2026-11-26T10:00:00.1234567Z"
    assert deliver(host, [event]).status_code == 202


# --- the configured account, never the event's URL ------------------------------------------------------------


def test_a_forged_delivery_for_another_host_starts_no_run(host: RunningHost) -> None:
    name = f"forged-{uuid.uuid4().hex[:8]}.csv"
    etag = upload(host, name, b"id,height\n1,170\n")
    real = blob_event(host, name, etag, 16)
    forged_urls = [
        f"https://evil.blob.core.windows.net/{INPUT}/{name}",
        f"http://127.0.0.1:{host.azurite_port}/otheraccount/{INPUT}/{name}",
        f"http://127.0.0.1:{host.azurite_port}/{ACCOUNT}/uploads/{name}",
    ]
    forged = [{**real, "id": f"forged-{i}", "data": {**real["data"], "url": url}} for i, url in enumerate(forged_urls)]
    assert deliver(host, forged).status_code == 202  # acknowledged: Event Grid must not retry it
    time.sleep(1.0)
    assert runs(host, name) == []
    log = host.log_text()
    assert "event forged-0" in log and "not the configured account 'devstoreaccount1'" in log
    assert "event forged-2" in log and "container 'uploads'" in log
    # The genuine event starts the one run, under the id of the configured account.
    assert deliver(host, [real]).status_code == 202
    deadline = time.monotonic() + 30
    while not runs(host, name) and time.monotonic() < deadline:
        time.sleep(0.1)
    (run,) = runs(host, name)
    assert run["instanceId"] == scoring_instance_id(ACCOUNT, INPUT, name, etag)
    assert run["input"]["request"]["account"] == ACCOUNT


# --- no key, token or raw control character in the log --------------------------------------------------------


def _raw_request(host: RunningHost, request: bytes) -> bytes:
    port = int(host.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_over_long_urls_and_headers_are_refused_cleanly_without_the_key_in_the_log(host: RunningHost) -> None:
    before = len(host.log_text())
    long_url = f"/api/weight?height=150&code={host.key}&pad={'a' * 9000}"
    assert host.request("GET", long_url, key=False).status_code == 414
    huge_url = f"/api/weight?code={host.key}&pad={'a' * 70_000}"
    answer = _raw_request(host, f"GET {huge_url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    headers = {"x-functions-key": host.key, **{f"x-pad-{i}": "b" * 4000 for i in range(9)}}
    assert host.request("GET", "/api/weight?height=150", headers=headers).status_code == 431
    huge_header = f"GET /api/weight HTTP/1.1\r\nHost: x\r\nx-functions-key: {host.key}{'c' * 70_000}\r\n\r\n"
    assert _raw_request(host, huge_header.encode()).split(b" ", 2)[1] == b"400"
    time.sleep(0.5)
    log = host.log_text()[before:]
    assert host.key not in log
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]
    assert "refused a malformed request" in log


def test_control_characters_from_an_event_are_escaped_in_the_log(host: RunningHost) -> None:
    before = len(host.log_text())
    marker = uuid.uuid4().hex[:8]
    name = f"nul-{marker}\x00\x1b[2J.csv"
    event = blob_event(host, name, "0x1", 16, event_id=f"id-{marker}\r\nFORGED {marker} line")
    assert deliver(host, [event]).status_code == 202  # a NUL in a name is never scored: acknowledged, ignored
    time.sleep(1.0)
    log = host.log_text()[before:]
    assert f"id-{marker}\\x0d\\x0aFORGED {marker} line" in log, log[-2000:]
    assert f"nul-{marker}\\x00\\x1b[2J.csv" in log
    assert not RAW_CONTROL.search(log)
    assert not any(line.startswith("FORGED") for line in log.splitlines())
