"""devhost against a small sample app with one function of each trigger kind (tests/sample_app)."""

from __future__ import annotations

import functools
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import pid_alive
from devhost.timers import occurrences_log, parse_schedule
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.events import post_events
from tests.helpers.processes import child_pids
from tests.helpers.storage import blob_service

pytestmark = pytest.mark.integration

SAMPLE_APP = APP_ROOT / "tests" / "sample_app"


@pytest.fixture(scope="module")
def sample_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("sample-devhost")
    settings = {
        "SAMPLE_STATE_DIR": str(data / "sample-state"),
        "TICK_SCHEDULE": "* * * * * *",
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(
            [
                {
                    "function": "on_event",
                    "subjectBeginsWith": "/blobServices/default/containers/drop/",
                    "subjectEndsWith": ".csv",
                },
            ]
        ),
    }
    host = start_devhost(data, settings, script_root=SAMPLE_APP)
    yield host
    host.stop()


def _events(host: RunningHost) -> list[dict[str, Any]]:
    path = Path(host.settings["SAMPLE_STATE_DIR"]) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start(host: RunningHost, orchestrator: str, body: Any = None, instance_id: str | None = None) -> requests.Response:
    path = f"/api/start/{orchestrator}" + (f"/{instance_id}" if instance_id else "")
    return host.request("POST", path, data=json.dumps(body) if body is not None else b"")


def test_http_start_returns_check_status_urls_that_work_when_followed(sample_host: RunningHost) -> None:
    response = _start(sample_host, "hello_orchestrator", ["Ada", "Linus"])
    assert response.status_code == 202
    payload = response.json()
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert set(payload) >= {
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "suspendPostUri",
        "resumePostUri",
    }
    # The URLs carry the key they need: followed as they are, like curl would.
    status = sample_host.wait_for_completion(payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Ada!", "Hello Linus!"]
    assert status["customStatus"] == {"done": 2, "total": 2}
    assert status["input"] == ["Ada", "Linus"]
    assert status["name"] == "hello_orchestrator"


def test_fan_out_of_500_activities_completes(sample_host: RunningHost) -> None:
    started = time.perf_counter()
    response = _start(sample_host, "fanout_orchestrator", {"count": 500})
    status = sample_host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=120)
    elapsed = time.perf_counter() - started
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"count": 500, "sum": sum(n * n for n in range(500))}
    print(f"fan-out of 500 activities: {elapsed:.2f} s")


def test_activity_that_raises_fails_the_orchestration_with_its_message(sample_host: RunningHost) -> None:
    response = _start(sample_host, "failing_orchestrator")
    status = sample_host.wait_for_completion(response.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    assert "activity exploded with kaboom-42" in status["output"]


def test_retry_options_retry_a_flaky_activity(sample_host: RunningHost) -> None:
    response = _start(sample_host, "retry_orchestrator")
    status = sample_host.wait_for_completion(response.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"attempts": 3}


def test_sub_orchestration_and_deterministic_uuid(sample_host: RunningHost) -> None:
    response = _start(sample_host, "parent_orchestrator")
    status = sample_host.wait_for_completion(response.json()["statusQueryGetUri"])
    parent = response.json()["id"]
    # The child sees its parent; without an explicit id DTFx names it `<parent execution>:<task id>`.
    info = {"parent": parent, "id": f"{parent}:1"}
    assert status["output"] == {"child": ["Hello Child!"], "uuids_differ": True, "info": info}


def test_a_sub_orchestration_longer_than_30_s_reports_to_its_parent(sample_host: RunningHost) -> None:
    # durabletask's in-memory backend stopped watching a sub-orchestration after 30 s: the parent stayed Running.
    started = time.monotonic()
    response = _start(sample_host, "long_parent_orchestrator", {"seconds": 31})
    status = sample_host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=90)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"child": {"slept": 31}}
    assert time.monotonic() - started >= 31


def test_external_event_timer_and_management_operations(sample_host: RunningHost) -> None:
    response = _start(sample_host, "event_orchestrator", instance_id="approval-1")
    urls = response.json()
    assert urls["id"] == "approval-1"
    # The same id while it runs -> the starter's client surfaces the host's 409.
    duplicate = _start(sample_host, "event_orchestrator", instance_id="approval-1")
    assert duplicate.status_code == 500
    pending = requests.get(urls["statusQueryGetUri"], timeout=10)
    assert pending.status_code == 202
    assert pending.headers["Retry-After"] and pending.headers["Location"]
    raised = requests.post(urls["sendEventPostUri"].replace("{eventName}", "approve"), json="grace", timeout=10)
    assert raised.status_code == 202
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    assert status["output"] == {"approved_by": "grace", "instance": "approval-1"}
    # Ended instances refuse events and terminations with 410, and can be purged once.
    gone = requests.post(urls["terminatePostUri"].replace("{text}", "late"), timeout=10)
    assert gone.status_code == 410
    assert requests.delete(urls["purgeHistoryDeleteUri"], timeout=10).json() == {"instancesDeleted": 1}
    assert requests.get(urls["statusQueryGetUri"], timeout=10).status_code == 404


def test_terminate_a_running_instance(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "event_orchestrator").json()
    assert (
        requests.post(urls["terminatePostUri"].replace("{text}", "no%20longer%20needed"), timeout=10).status_code == 202
    )
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Terminated"


def test_list_instances_filters_by_status(sample_host: RunningHost) -> None:
    failed = _start(sample_host, "failing_orchestrator").json()
    completed = _start(sample_host, "hello_orchestrator").json()
    sample_host.wait_for_completion(failed["statusQueryGetUri"])
    sample_host.wait_for_completion(completed["statusQueryGetUri"])
    listed = sample_host.request("GET", "/runtime/webhooks/durabletask/instances?runtimeStatus=Failed")
    assert listed.status_code == 200
    ids = {item["instanceId"] for item in listed.json()}
    assert failed["id"] in ids and completed["id"] not in ids
    assert all(item["runtimeStatus"] == "Failed" for item in listed.json())
    bad = sample_host.request("GET", "/runtime/webhooks/durabletask/instances?runtimeStatus=Sleeping")
    assert bad.status_code == 400 and "Sleeping" in bad.json()["error"]


def test_unknown_instance_is_404(sample_host: RunningHost) -> None:
    response = sample_host.request("GET", "/runtime/webhooks/durabletask/instances/does-not-exist")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/echo/x",
        "/runtime/webhooks/durabletask/instances",
        "/runtime/webhooks/eventgrid?functionName=on_event",
        "/api/start/hello_orchestrator",
    ],
)
def test_missing_or_wrong_key_is_401(sample_host: RunningHost, path: str) -> None:
    method = "GET" if "instances" in path or "echo" in path else "POST"
    assert sample_host.request(method, path, key=False).status_code == 401
    assert sample_host.request(method, path, key=False, headers={"x-functions-key": "wrong"}).status_code == 401


def test_anonymous_function_needs_no_key(sample_host: RunningHost) -> None:
    response = sample_host.request("GET", "/api/ping", key=False)
    assert response.status_code == 200 and response.text == "pong"


def test_http_request_is_delivered_whole_and_response_sent_as_is(sample_host: RunningHost) -> None:
    response = requests.post(
        f"{sample_host.base_url}/api/echo/alpha/beta?code={sample_host.key}&q=1",
        data=b"payload",
        headers={
            "x-sample": "header-value",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes"
    body = response.json()
    assert body["method"] == "POST"
    assert body["route"] == {"name": "alpha", "part": "beta"}
    assert body["params"]["q"] == "1"
    assert body["body"] == "payload"
    assert body["header"] == "header-value"
    # The invocation continues the caller's trace, as the host does.
    assert body["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert body["traceparent"] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    optional = sample_host.request("GET", "/api/echo/only")
    assert optional.json()["route"] == {"name": "only"}


def test_wrong_method_and_unknown_route(sample_host: RunningHost) -> None:
    assert sample_host.request("DELETE", "/api/echo/x").status_code == 405
    assert sample_host.request("GET", "/api/nothing-here").status_code == 404


def test_function_that_raises_answers_500_without_stack_trace(sample_host: RunningHost) -> None:
    response = sample_host.request("GET", "/api/explode")
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    invocation_id = response.json()["invocationId"]
    assert invocation_id in sample_host.log_text()


def test_timer_with_every_second_schedule_fires(sample_host: RunningHost) -> None:
    ticks = Path(sample_host.settings["SAMPLE_STATE_DIR"]) / "ticks.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ticks.exists() and len(ticks.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    lines = [json.loads(line) for line in ticks.read_text().splitlines()]
    assert len(lines) >= 3
    # About one tick a second: N ticks span about N-1 seconds (loose, for a loaded machine).
    span = lines[-1]["at"] - lines[0]["at"]
    assert len(lines) - 3 <= span <= len(lines) + 1


# The sample app's Event Grid function.
_on_event = functools.partial(post_events, function="on_event")


def test_eventgrid_subscription_validation_handshake(sample_host: RunningHost) -> None:
    event = {
        "id": "v1",
        "topic": "/t",
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-11-26T00:00:00Z",
        "dataVersion": "2",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://x"},
    }
    response = _on_event(sample_host, [event], event_type="SubscriptionValidation")
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    # The handshake is answered only as specified: a validation event sent as a notification is refused.
    assert _on_event(sample_host, [event]).status_code == 400
    assert _on_event(sample_host, [event], event_type="SubscriptionValidation", key=False).status_code == 401


def test_eventgrid_notification_and_cloudevent_reach_the_function(sample_host: RunningHost) -> None:
    notification = {
        "id": "eg-1",
        "topic": "/subscriptions/x",
        "subject": "/blobServices/default/containers/c/blobs/a",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-26T00:00:00Z",
        "dataVersion": "",
        "data": {"url": "http://a/c/a", "eTag": "0x1"},
    }
    assert _on_event(sample_host, [notification]).status_code == 202
    cloud = {
        "id": "ce-1",
        "source": "/subscriptions/x",
        "type": "Microsoft.Storage.BlobCreated",
        "specversion": "1.0",
        "subject": "/blobServices/default/containers/c/blobs/b",
        "time": "2026-11-26T00:00:00Z",
        "data": {"url": "http://a/c/b", "eTag": "0x2"},
    }
    # Event Grid sends aeg-event-type with CloudEvents too; without it the extension answers 400 (HttpRequestProcessor).
    cloud_type = "application/cloudevents+json"
    assert _on_event(sample_host, cloud, content_type=cloud_type).status_code == 202
    assert _on_event(sample_host, {**cloud, "id": "ce-2"}, event_type=None, content_type=cloud_type).status_code == 400
    by_id = {e["id"]: e for e in _events(sample_host)}
    assert by_id["eg-1"]["schema"] == "eventgrid" and by_id["eg-1"]["data"]["eTag"] == "0x1"
    assert by_id["ce-1"]["schema"] == "cloudevents" and by_id["ce-1"]["data"]["eTag"] == "0x2"
    assert "ce-2" not in by_id


@pytest.mark.parametrize(
    ("body", "event_type", "expected"),
    [
        (b"not json", "Notification", "not JSON"),
        ([], "Notification", "non-empty"),
        ([{"id": "x"}], "Notification", "lacks eventType"),
        (
            [{"id": "1", "eventType": "t", "subject": "s", "eventTime": "t", "data": {}, "dataVersion": ""}],
            "Bogus",
            "aeg-event-type",
        ),
        (
            {"id": "1"},
            "Notification",
            "events[0] lacks eventType",
        ),  # one object: a delivery of one, as the extension reads it
        (["string-event"], "Notification", "not a JSON object"),
    ],
)
def test_malformed_eventgrid_delivery_is_400_naming_the_problem(
    sample_host: RunningHost, body: Any, event_type: str, expected: str
) -> None:
    response = _on_event(sample_host, body, event_type=event_type)
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_eventgrid_unknown_function_is_404(sample_host: RunningHost) -> None:
    assert post_events(sample_host, [{}], function="nope").status_code == 404


def test_blob_upload_reaches_eventgrid_function_once_per_version(sample_host: RunningHost) -> None:
    service = blob_service(sample_host)
    blob = service.get_blob_client("drop", "folder/My File.csv")
    ignored = service.get_blob_client("drop", "notes.txt")
    ignored.upload_blob(b"not a csv", overwrite=True)
    first = blob.upload_blob(b"a,b\n1,2\n", overwrite=True)
    second_deadline = time.monotonic() + 5

    def relayed() -> list[dict[str, Any]]:
        return [e for e in _events(sample_host) if e["subject"].endswith("/blobs/folder/My File.csv")]

    while time.monotonic() < second_deadline and len(relayed()) < 1:
        time.sleep(0.1)
    assert len(relayed()) == 1
    event = relayed()[0]
    assert event["type"] == "Microsoft.Storage.BlobCreated"
    assert event["subject"] == "/blobServices/default/containers/drop/blobs/folder/My File.csv"
    assert event["data"]["eTag"] == first["etag"].strip('"')
    assert event["data"]["contentLength"] == 8
    assert event["data"]["url"].endswith("/drop/folder/My%20File.csv")
    second = blob.upload_blob(b"a,b\n3,4\n5,6\n", overwrite=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(relayed()) < 2:
        time.sleep(0.1)
    time.sleep(1.0)  # a few more relay passes: still exactly one event per version
    events = relayed()
    assert [e["data"]["eTag"] for e in events] == [first["etag"].strip('"'), second["etag"].strip('"')]
    assert int(events[1]["data"]["sequencer"], 16) > int(events[0]["data"]["sequencer"], 16)
    assert not [e for e in _events(sample_host) if e["subject"].endswith("notes.txt")]


def test_broken_function_app_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("import azure.functions as func\nraise ImportError('missing_dep')\n")
    result = subprocess.run(  # noqa: PLW1510 (the exit code is asserted)
        [
            sys.executable,
            "-m",
            "devhost",
            "--script-root",
            str(tmp_path),
            "--no-azurite",
            "--port",
            "0",
            "--settings",
            str(tmp_path / "none.json"),
        ],
        cwd=APP_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "importing function_app" in result.stderr and "missing_dep" in result.stderr


def test_stop_leaves_no_orphan_processes(tmp_path: Path) -> None:
    host = start_devhost(
        tmp_path,
        {"SAMPLE_STATE_DIR": str(tmp_path / "s"), "TICK_SCHEDULE": "0 0 0 1 1 *"},
        script_root=SAMPLE_APP,
        workers=1,
    )
    children = child_pids(host.proc.pid)
    assert len(children) >= 2  # Azurite and one worker
    assert host.stop(signal.SIGINT) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if pid_alive(pid)]


# --- Durable semantics as in Azure (df's replay through devhost's bridge) --------------------------------------


def test_task_all_fails_as_soon_as_one_activity_fails(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "fail_fast_orchestrator").json()
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    # The slow sibling (4 s) had not finished when the orchestration failed: df does not wait for it.
    slow = Path(sample_host.settings["SAMPLE_STATE_DIR"]) / "slow.jsonl"
    finished = [json.loads(line)["key"] for line in slow.read_text().splitlines()] if slow.exists() else []
    assert urls["id"] not in finished


def test_retry_makes_a_timer_after_every_failed_attempt_including_the_last(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "retry_timing_orchestrator").json()
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    # 3 attempts at 1 s: the failure reaches the orchestrator after 3 timers (3 s), not 2, as with DTFx.
    assert 3.0 <= status["output"]["seconds"] < 15
    assert status["output"]["error"].startswith("Activity function 'flaky' failed: RuntimeError: transient failure 3")


def test_task_any_returns_the_winning_task_with_its_result(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "race_orchestrator").json()
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    assert status["output"] == {"result": "Hello Race!", "fast_won": True}


def test_failed_activity_message_reaches_the_orchestrator_and_the_status_output(sample_host: RunningHost) -> None:
    caught = sample_host.wait_for_completion(_start(sample_host, "caught_orchestrator").json()["statusQueryGetUri"])
    # What df raises in Azure: Exception("<Reason> \n <Details>"), the reason naming the activity and error.
    reason, details = caught["output"]["caught"].split(" \n ", 1)
    assert reason == "Activity function 'explode' failed: ValueError: activity exploded with caught-7"
    assert json.loads(details)["Message"] == "ValueError: activity exploded with caught-7"
    assert "/devhost/" not in json.loads(details)["StackTraceString"]  # no frame of devhost's modules
    failed = sample_host.wait_for_completion(_start(sample_host, "failing_orchestrator").json()["statusQueryGetUri"])
    assert failed["output"].startswith(
        "Orchestrator function 'failing_orchestrator' failed: "
        "Activity function 'explode' failed: ValueError: activity exploded with kaboom-42 \n "
    )


def test_task_all_of_nothing_completes_with_none(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "empty_fanout_orchestrator").json()
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"], timeout=20)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"results": None}


# --- timers as the host reads them (NCrontab) ---------------------------------------------------------------------


def _occurrences(log: str, function: str) -> tuple[str, list[datetime]]:
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if f"occurrences of the '{function}' schedule" in line)
    header = lines[start][lines[start].index("The next") :]
    return header, [datetime.strptime(line.strip(), "%m/%d/%Y %H:%M:%SZ") for line in lines[start + 1 : start + 6]]


def test_timers_log_their_next_occurrences_as_ncrontab_computes_them(sample_host: RunningHost) -> None:
    log = sample_host.log_text()
    header, both = _occurrences(log, "both_day_fields")
    assert header == "The next 5 occurrences of the 'both_day_fields' schedule (Cron: '0 30 4 1,15 * 5') will be:"
    # Day of month AND day of week: only a 1st or 15th that is a Friday.
    assert all(d.day in (1, 15) and d.weekday() == 4 and (d.hour, d.minute) == (4, 30) for d in both)
    _, weekdays = _occurrences(log, "five_fields")  # 5 fields: no seconds, as the timer extension reads it
    assert all(d.weekday() < 5 and (d.hour, d.minute, d.second) == (22, 0, 0) for d in weekdays)
    assert {b - a for a, b in itertools.pairwise(weekdays)} <= {timedelta(days=1), timedelta(days=3)}
    _, named = _occurrences(log, "named_fields")
    assert all(d.month in (1, 7) and d.weekday() == 6 and d.hour == 9 for d in named)
    now = datetime.now(UTC)
    for name, expression in [("both_day_fields", "0 30 4 1,15 * 5"), ("named_fields", "0 0 9 * Jan,Jul Sun")]:
        assert occurrences_log(name, parse_schedule(expression), now)[1:] == [
            d.strftime("%m/%d/%Y %H:%M:%SZ") for d in _occurrences(log, name)[1]
        ]


def test_a_timer_ncrontab_refuses_is_disabled_with_the_reason(sample_host: RunningHost) -> None:
    log = sample_host.log_text()
    assert "Function 'Functions.seven_as_sunday' failed indexing and will be disabled." in log
    assert "7 is higher than the maximum allowable value for the [DayOfWeek] field" in log
    assert "seven_as_sunday: timerTrigger (0 0 22 * * 7)  DISABLED" in log


def test_a_function_the_worker_would_not_load_stops_devhost_naming_it(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.route(route='x')\n"
        "def handler(req: func.HttpRequest, extra: str) -> func.HttpResponse:\n"
        "    return func.HttpResponse('')\n"
    )
    command = [sys.executable, "-m", "devhost", "--script-root", str(tmp_path), "--no-azurite", "--port", "0"]
    command += ["--settings", str(tmp_path / "none.json")]
    result = subprocess.run(command, cwd=APP_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert (
        "cannot load the handler function: the following parameters are declared in Python but not in "
        "function.json: {'extra'}" in result.stderr
    )


def test_continue_as_new_restarts_with_the_new_input(sample_host: RunningHost) -> None:
    urls = _start(sample_host, "counter_orchestrator", 0).json()
    status = sample_host.wait_for_completion(urls["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"count": 2, "last": "Hello 2!"}
