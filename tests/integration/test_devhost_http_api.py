"""devhost's HTTP surfaces answer as Azure's do, for an app written the way Microsoft's samples are
(tests/http_api_app): the Durable HTTP API as the extension's HttpApiHandler, the Event Grid webhook as the Event Grid
extension's HttpRequestProcessor, the keys as the Functions host checks them, and request bodies as the host passes
them. Each test names its source; the sources are in Azure/azure-functions-durable-extension (src/WebJobs.Extensions.
DurableTask, v2.13.7: HttpApiHandler.cs, ContextImplementations/DurableClient.cs, HttpRequestMessageExtensions.cs),
Azure/azure-sdk-for-net (sdk/eventgrid/Microsoft.Azure.WebJobs.Extensions.EventGrid/src/TriggerBinding/
HttpRequestProcessor.cs) and Azure/azure-functions-host (src/WebJobs.Script.WebHost/Security: AuthenticationLevelHandler
.cs, Authorization/AuthUtility.cs)."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = pytest.mark.integration

APP = APP_ROOT / "tests" / "http_api_app"
DURABLE = "/runtime/webhooks/durabletask"
EVENTGRID = "/runtime/webhooks/eventgrid?functionName=on_blob"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("http-api-devhost")
    settings = {"APP_STATE_DIR": str(data / "app"), "BLOB_WORK_SECONDS": "0"}
    (data / "app").mkdir()
    running = start_devhost(data, settings, script_root=APP, workers=1)
    yield running
    running.stop()


def call(host: RunningHost, method: str, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
    """A request with the given key (`code=`), or none."""
    params = dict(kwargs.pop("params", {}) or {})
    if key is not None:
        params["code"] = key
    return requests.request(method, host.base_url + path, params=params, timeout=60, **kwargs)


def durable_key(host: RunningHost) -> str:
    return host.system_key("durabletask_extension")


def start(host: RunningHost, orchestrator: str, body: Any = None, **params: str) -> requests.Response:
    data = json.dumps(body) if body is not None else None
    return call(
        host,
        "POST",
        f"{DURABLE}/orchestrators/{orchestrator}",
        durable_key(host),
        data=data,
        headers=JSON,
        params=params,
    )


def wait_until(host: RunningHost, instance_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = call(host, "GET", f"{DURABLE}/instances/{instance_id}", durable_key(host)).json()
        if body.get("runtimeStatus") in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} not {statuses} within {timeout} s: {body}\n{host.log_text()[-3000:]}")


def status(host: RunningHost, instance_id: str, **params: str) -> requests.Response:
    return call(host, "GET", f"{DURABLE}/instances/{instance_id}", durable_key(host), params=params)


# --- keys (AuthenticationLevelHandler, AuthUtility.PrincipalHasAuthLevelClaim) ----------------------------------


def test_each_key_opens_what_it_opens_on_azure(host: RunningHost) -> None:
    function_key, master = host.function_key, host.key
    durable, eventgrid = durable_key(host), host.system_key("eventgrid_extension")
    assert len({function_key, master, durable, eventgrid}) == 4
    validation = [{"data": {"validationCode": "abc"}}]
    grid_headers = {"aeg-event-type": "SubscriptionValidation", **JSON}

    def codes(key: str) -> tuple[int, int, int, int]:
        return (
            call(host, "POST", "/api/echo", key, data=b"x").status_code,
            call(host, "GET", f"{DURABLE}/instances", key).status_code,
            call(host, "POST", EVENTGRID, key, json=validation, headers=grid_headers).status_code,
            call(host, "GET", "/admin/host/status", key).status_code,
        )

    # (HTTP function, Durable HTTP API, Event Grid webhook, /admin)
    assert codes(function_key) == (200, 401, 401, 401)  # a function key never opens an extension's webhook
    assert codes(durable) == (401, 200, 401, 401)  # a system key opens its own extension only
    assert codes(eventgrid) == (401, 401, 200, 401)
    assert codes(master) == (200, 200, 200, 200)  # DEVHOST_KEY is the master key: everything, as scripts rely on
    refused = call(host, "GET", f"{DURABLE}/instances", function_key)
    assert "durabletask_extension system key or the master key" in refused.json()["error"]


def test_the_header_wins_over_the_code_parameter_even_when_empty(host: RunningHost) -> None:
    # AuthenticationLevelHandler.GetAuthorizationKeyInfoAsync reads x-functions-key first, `code` only without it.
    with_header = {"x-functions-key": host.function_key}
    assert call(host, "POST", "/api/echo", "wrong", data=b"x", headers=with_header).status_code == 200
    assert (
        call(host, "POST", "/api/echo", host.function_key, data=b"x", headers={"x-functions-key": ""}).status_code
        == 401
    )


def test_status_urls_carry_the_durabletask_system_key_and_work_as_handed_out(host: RunningHost) -> None:
    started = call(host, "POST", "/api/orchestrators/hello_orchestrator", host.function_key)
    assert started.status_code == 202, started.text
    urls = started.json()
    for name in ("statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"):
        query = parse_qs(urlsplit(urls[name]).query)
        assert query["code"] == [durable_key(host)], name  # as Azure's: the extension's key, not the master key
        assert query["taskHub"] == ["HttpApiHub"]
    final = host.wait_for_completion(urls["statusQueryGetUri"])
    assert final["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_keys_are_kept_across_a_restart(tmp_path: Any) -> None:
    settings = {"APP_STATE_DIR": str(tmp_path), "BLOB_WORK_SECONDS": "0"}
    first = start_devhost(tmp_path, settings, script_root=APP, workers=1)
    keys = (first.function_key, durable_key(first))
    first.stop()
    second = start_devhost(tmp_path, settings, script_root=APP, workers=1)
    try:
        assert (second.function_key, durable_key(second)) == keys
        assert call(second, "POST", "/api/echo", keys[0], data=b"x").status_code == 200
        assert first.function_key not in second.log_text().split("Master key")[0]
    finally:
        second.stop()


# --- raiseEvent (HttpApiHandler.HandleRaiseEventRequestAsync) --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'"7906"', {"value": "7906", "type": "str"}),  # curl -H 'Content-Type: application/json' -d '"7906"'
        (b"7906", {"value": 7906, "type": "int"}),
        (b'{"approved": true}', {"value": {"approved": True}, "type": "dict"}),
    ],
)
def test_a_raised_event_is_one_json_token(host: RunningHost, body: bytes, expected: dict[str, Any]) -> None:
    instance = start(host, "approval_orchestrator").json()["id"]
    wait_until(host, instance, {"Running"})
    raised = call(
        host, "POST", f"{DURABLE}/instances/{instance}/raiseEvent/Approval", durable_key(host), data=body, headers=JSON
    )
    assert raised.status_code == 202 and raised.content == b""
    assert wait_until(host, instance, {"Completed"})["output"] == expected


def test_the_python_clients_raise_event_arrives_as_json_text(host: RunningHost) -> None:
    # df's DurableOrchestrationClient.raise_event posts json.dumps(data) as JSON (double encoding); the extension
    # reads one token, so the orchestrator gets the text (Azure/azure-functions-durable-python issue #295).
    instance = start(host, "approval_orchestrator").json()["id"]
    wait_until(host, instance, {"Running"})
    assert call(host, "POST", f"/api/raise/{instance}/Approval", host.function_key, json="grace").status_code == 202
    assert wait_until(host, instance, {"Completed"})["output"] == {"value": '"grace"', "type": "str"}


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Content-Type": "text/plain"}, b'"7906"', "Only application/json request content is supported"),
        ({}, b'"7906"', "Only application/json request content is supported"),
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"7906",
            "Only application/json request content is supported",
        ),
        (JSON, b'{"a": ', "Invalid JSON content"),
        (JSON, b"", "Invalid JSON content"),
    ],
)
def test_a_raised_event_that_is_not_json_is_refused_with_400(
    host: RunningHost, headers: dict[str, str], body: bytes, message: str
) -> None:
    instance = start(host, "approval_orchestrator").json()["id"]
    wait_until(host, instance, {"Running"})
    url = host.base_url + f"{DURABLE}/instances/{instance}/raiseEvent/Approval?code={durable_key(host)}"
    # requests adds no Content-Type to raw bytes: what the extension sees as no media type.
    answer = requests.post(url, data=body, headers=headers, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["Message"] == message
    assert status(host, instance).json()["runtimeStatus"] == "Running"  # nothing was raised
    call(host, "POST", f"{DURABLE}/instances/{instance}/terminate", durable_key(host))


def test_a_raised_event_to_an_unknown_or_ended_instance(host: RunningHost) -> None:
    path = f"{DURABLE}/instances/nobody-here/raiseEvent/Approval"
    assert call(host, "POST", path, durable_key(host), data=b"1", headers=JSON).status_code == 404
    done = start(host, "hello_orchestrator").json()["id"]
    wait_until(host, done, {"Completed"})
    gone = call(
        host, "POST", f"{DURABLE}/instances/{done}/raiseEvent/Approval", durable_key(host), data=b"1", headers=JSON
    )
    assert gone.status_code == 410


# --- a failing orchestration (HandleGetStatusRequestAsync) -------------------------------------------------------


def test_a_failed_instance_answers_200_or_500_with_return_internal_server_error_on_failure(host: RunningHost) -> None:
    instance = start(host, "failing_orchestrator").json()["id"]
    failed = wait_until(host, instance, {"Failed"})
    assert failed["output"].startswith(
        "Orchestrator function 'failing_orchestrator' failed: Activity function 'fail' failed: "
        "ValueError: activity failed with boom-17"
    )
    assert status(host, instance).status_code == 200
    flagged = status(host, instance, returnInternalServerErrorOnFailure="true")
    assert flagged.status_code == 500
    assert flagged.json() == failed
    assert status(host, instance, returnInternalServerErrorOnFailure="TRUE").status_code == 500  # bool.TryParse
    done = start(host, "hello_orchestrator").json()["id"]
    wait_until(host, done, {"Completed"})
    assert status(host, done, returnInternalServerErrorOnFailure="true").status_code == 200


# --- instance queries ----------------------------------------------------------------------------------------------


def test_output_and_custom_status_come_without_show_input(host: RunningHost) -> None:
    instance = start(host, "hello_orchestrator", ["Oslo"]).json()["id"]
    wait_until(host, instance, {"Completed"})
    without = status(host, instance, showInput="false").json()
    assert without["input"] is None
    assert without["output"] == ["Hello Oslo!"] and without["customStatus"] == {"greeted": 1}
    listed = call(host, "GET", f"{DURABLE}/instances", durable_key(host), params={"instanceIdPrefix": instance}).json()
    assert [(i["output"], i["customStatus"], i["input"]) for i in listed] == [(["Hello Oslo!"], {"greeted": 1}, None)]
    shown = call(
        host,
        "GET",
        f"{DURABLE}/instances",
        durable_key(host),
        params={"instanceIdPrefix": instance, "showInput": "true"},
    )
    assert shown.json()[0]["input"] == ["Oslo"]


def test_show_history_has_the_extensions_shape_and_real_times(host: RunningHost) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    instance = start(host, "hello_orchestrator", ["Oslo", "Rome"]).json()["id"]
    wait_until(host, instance, {"Completed"})
    history = status(host, instance, showHistory="true").json()["historyEvents"]
    kinds = [event["EventType"] for event in history]
    # DurableClient.GetDurableOrchestrationStatusAsync: TaskScheduled folded into TaskCompleted, no
    # OrchestratorStarted/Completed, no EventId/IsPlayed.
    assert kinds == ["ExecutionStarted", "TaskCompleted", "TaskCompleted", "ExecutionCompleted"], history
    started, first, _, completed = history
    assert started["FunctionName"] == "hello_orchestrator" and started["Input"] == '["Oslo", "Rome"]'
    assert first["FunctionName"] == "say_hello" and first["Input"] == '"Oslo"' and "Result" not in first
    assert completed["OrchestrationStatus"] == "Completed" and "Result" not in completed
    assert all("EventId" not in e and "IsPlayed" not in e and "TaskScheduledId" not in e for e in history)
    moments = [datetime.fromisoformat(e["Timestamp"].replace("Z", "+00:00")) for e in history]
    assert all(before <= m <= datetime.now(UTC) for m in moments), moments  # not 1970
    assert moments == sorted(moments)
    assert before <= datetime.fromisoformat(first["ScheduledTime"].replace("Z", "+00:00")) <= moments[1]
    with_output = status(host, instance, showHistory="true", showHistoryOutput="true", showInput="false").json()
    results = [e.get("Result") for e in with_output["historyEvents"]]
    assert results == [None, "Hello Oslo!", "Hello Rome!", ["Hello Oslo!", "Hello Rome!"]]
    assert all("Input" not in e for e in with_output["historyEvents"])


def test_history_of_a_failed_task_names_the_activity_and_its_error(host: RunningHost) -> None:
    instance = start(host, "failing_orchestrator").json()["id"]
    wait_until(host, instance, {"Failed"})
    history = status(host, instance, showHistory="true").json()["historyEvents"]
    failed = next(e for e in history if e["EventType"] == "TaskFailed")
    assert failed["FunctionName"] == "fail" and failed["Input"] == '"boom-17"'
    assert failed["Reason"] == "Activity function 'fail' failed: ValueError: activity failed with boom-17"
    assert history[-1]["EventType"] == "ExecutionCompleted" and history[-1]["OrchestrationStatus"] == "Failed"


# --- create-and-wait (HandleStartOrchestratorRequestAsync, WaitForCompletionOrCreateCheckStatusResponseAsync) -----


def test_create_and_wait_answers_200_with_the_output_once_completed(host: RunningHost) -> None:
    answer = start(host, "hello_orchestrator", ["Lima"], timeout="30", pollingInterval="0.2")
    assert answer.status_code == 200
    assert answer.json() == ["Hello Lima!"]  # the output itself, not a status


def test_create_and_wait_answers_202_when_the_timeout_runs_out(host: RunningHost) -> None:
    started = time.monotonic()
    answer = start(host, "sleepy_orchestrator", 30, timeout="1.5", pollingInterval="0.5")
    waited = time.monotonic() - started
    assert answer.status_code == 202
    assert 1.4 <= waited < 10
    body = answer.json()
    assert set(body) == {
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    }
    assert answer.headers["Location"] == body["statusQueryGetUri"] and answer.headers["Retry-After"] == "10"
    call(host, "POST", f"{DURABLE}/instances/{body['id']}/terminate", durable_key(host))


def test_create_and_wait_of_a_failing_orchestration_answers_its_status(host: RunningHost) -> None:
    answer = start(host, "failing_orchestrator", timeout="30", pollingInterval="0.2")
    assert answer.status_code == 200  # returnInternalServerErrorOnFailure is not applied on this path
    assert answer.json()["runtimeStatus"] == "Failed"


def test_create_and_wait_refuses_an_interval_longer_than_the_timeout(host: RunningHost) -> None:
    answer = start(host, "hello_orchestrator", timeout="1", pollingInterval="2")
    assert answer.status_code == 400
    assert answer.json()["Message"] == "One or more of the arguments submitted is incorrect"
    assert answer.json()["ExceptionMessage"] == "Total timeout 1 should be bigger than retry timeout 2"


def test_without_both_wait_parameters_a_start_answers_202_at_once(host: RunningHost) -> None:
    answer = start(host, "sleepy_orchestrator", 30, timeout="10")
    assert answer.status_code == 202
    call(host, "POST", f"{DURABLE}/instances/{answer.json()['id']}/terminate", durable_key(host))


# --- suspend / resume (HandleSuspendInstanceRequestAsync, DurableClient.SuspendAsync/ResumeAsync) -----------------


def test_suspend_and_resume_edge_cases_answer_as_the_extension(host: RunningHost) -> None:
    instance = start(host, "sleepy_orchestrator", 2).json()["id"]
    wait_until(host, instance, {"Running"})

    def operate(operation: str) -> requests.Response:
        return call(
            host, "POST", f"{DURABLE}/instances/{instance}/{operation}", durable_key(host), params={"reason": "test"}
        )

    resumed_running = operate("resume")
    assert resumed_running.status_code == 500
    assert resumed_running.json() == {
        "Message": "Something went wrong while processing your request",
        "ExceptionMessage": f"Cannot resume the orchestration instance {instance} "
        "because instance is in the Running state.",
        "ExceptionType": "System.InvalidOperationException",
    }
    assert operate("suspend").status_code == 202
    wait_until(host, instance, {"Suspended"})
    assert status(host, instance).status_code == 202  # a suspended instance is still in progress
    suspended_twice = operate("suspend")
    assert suspended_twice.status_code == 500
    assert suspended_twice.json()["ExceptionMessage"] == (
        f"Cannot suspend the orchestration instance {instance} because instance is in the Suspended state."
    )
    time.sleep(2.5)  # the timer fires while suspended: the instance waits
    assert status(host, instance).json()["runtimeStatus"] == "Suspended"
    assert operate("resume").status_code == 202
    assert wait_until(host, instance, {"Completed"})["output"] == {"slept": 2.0}
    assert operate("suspend").status_code == 410
    assert operate("resume").status_code == 410
    assert call(host, "POST", f"{DURABLE}/instances/nobody/suspend", durable_key(host)).status_code == 404


# --- rewind / restart ----------------------------------------------------------------------------------------------


def test_restart_starts_the_orchestrator_again_with_the_same_input(host: RunningHost) -> None:
    first = start(host, "hello_orchestrator", ["Kyiv"]).json()["id"]
    wait_until(host, first, {"Completed"})
    restarted = call(host, "POST", f"{DURABLE}/instances/{first}/restart", durable_key(host))
    assert restarted.status_code == 202
    new_id = restarted.json()["id"]
    assert new_id != first and len(new_id) == 32  # DurableClient.RestartAsync: a new GUID ("N") by default
    assert wait_until(host, new_id, {"Completed"})["output"] == ["Hello Kyiv!"]
    same = call(
        host,
        "POST",
        f"{DURABLE}/instances/{first}/restart",
        durable_key(host),
        params={"restartWithNewInstanceId": "false"},
    )
    assert same.status_code == 202 and same.json()["id"] == first
    assert wait_until(host, first, {"Completed"})["input"] == ["Kyiv"]
    unknown = call(host, "POST", f"{DURABLE}/instances/nobody/restart", durable_key(host))
    assert unknown.status_code == 400
    assert unknown.json()["Message"] == "InstanceId does not match a valid orchestration instance."


def test_restart_with_the_same_id_of_a_running_instance_is_refused(host: RunningHost) -> None:
    instance = start(host, "sleepy_orchestrator", 30).json()["id"]
    wait_until(host, instance, {"Running"})
    params = {"restartWithNewInstanceId": "false"}
    refused = call(host, "POST", f"{DURABLE}/instances/{instance}/restart", durable_key(host), params=params)
    assert refused.status_code == 500
    assert refused.json()["ExceptionMessage"] == "An Orchestration instance with the status Running already exists."
    call(host, "POST", f"{DURABLE}/instances/{instance}/terminate", durable_key(host))


def test_rewind_runs_the_failed_task_again_and_nothing_else(host: RunningHost) -> None:
    # DurableClient.RewindAsync (Failed only) -> the history without its failed tasks; the replay schedules them
    # again, the steps that had succeeded are not run again.
    key = f"rw-{time.time_ns()}"
    instance = start(host, "fails_once_orchestrator", key).json()["id"]
    failed = wait_until(host, instance, {"Failed"})
    assert "first call of" in failed["output"]
    rewound = call(
        host, "POST", f"{DURABLE}/instances/{instance}/rewind", durable_key(host), params={"reason": "fixed"}
    )
    assert rewound.status_code == 202 and rewound.content == b""
    done = wait_until(host, instance, {"Completed"})
    assert done["output"] == {"first": 1, "second": 2}
    history = status(host, instance, showHistory="true").json()["historyEvents"]
    assert [e.get("FunctionName") for e in history if e["EventType"] == "TaskCompleted"] == [
        "count_calls",
        "fail_first_time",
    ]
    assert call(host, "POST", f"{DURABLE}/instances/{instance}/rewind", durable_key(host)).status_code == 410


def test_rewind_refuses_an_instance_that_has_not_failed(host: RunningHost) -> None:
    running = start(host, "sleepy_orchestrator", 30).json()["id"]
    wait_until(host, running, {"Running"})
    not_failed = call(host, "POST", f"{DURABLE}/instances/{running}/rewind", durable_key(host))
    assert not_failed.status_code == 500
    assert (
        not_failed.json()["ExceptionMessage"]
        == "The rewind operation is only supported on failed orchestration instances."
    )
    call(host, "POST", f"{DURABLE}/instances/{running}/terminate", durable_key(host))
    wait_until(host, running, {"Terminated"})
    assert call(host, "POST", f"{DURABLE}/instances/{running}/rewind", durable_key(host)).status_code == 410
    assert call(host, "POST", f"{DURABLE}/instances/nobody/rewind", durable_key(host)).status_code == 404


# --- purge by filter (HandleDeleteHistoryWithFiltersRequestAsync) ------------------------------------------------


def test_purge_by_filter_deletes_what_matches_and_answers_404_when_nothing_does(host: RunningHost) -> None:
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # after every other test's instances
    ids = [start(host, "hello_orchestrator", ["P"]).json()["id"] for _ in range(2)]
    failed = start(host, "failing_orchestrator").json()["id"]
    running = start(host, "sleepy_orchestrator", 30).json()["id"]
    for instance in ids:
        wait_until(host, instance, {"Completed"})
    wait_until(host, failed, {"Failed"})
    purge = f"{DURABLE}/instances"
    only_failed = call(
        host, "DELETE", purge, durable_key(host), params={"createdTimeFrom": since, "runtimeStatus": "Failed"}
    )
    assert only_failed.status_code == 200 and only_failed.json() == {"instancesDeleted": 1}
    assert status(host, failed).status_code == 404
    assert status(host, ids[0]).status_code == 200
    everything = call(host, "DELETE", purge, durable_key(host), params={"createdTimeFrom": since})
    assert everything.status_code == 200 and everything.json() == {"instancesDeleted": 2}
    assert all(status(host, i).status_code == 404 for i in ids)
    assert status(host, running).status_code == 202  # a running instance is not purged
    nothing = call(host, "DELETE", purge, durable_key(host), params={"createdTimeFrom": since})
    assert nothing.status_code == 404 and nothing.content == b""
    missing = call(host, "DELETE", purge, durable_key(host))
    assert missing.status_code == 400 and missing.json() == "Please provide value for 'createdTimeFrom' parameter."
    call(host, "POST", f"{DURABLE}/instances/{running}/terminate", durable_key(host))


def test_purge_by_filter_refuses_a_filter_it_cannot_read(host: RunningHost) -> None:
    # The extension would ignore a misspelt status or end time and purge more than asked: devhost says so instead.
    since = "2020-01-01T00:00:00Z"
    for params in (
        {"createdTimeFrom": since, "runtimeStatus": "Complted"},
        {"createdTimeFrom": since, "createdTimeTo": "soon"},
    ):
        answer = call(host, "DELETE", f"{DURABLE}/instances", durable_key(host), params=params)
        assert answer.status_code == 400, params
        assert "Complted" in answer.text or "createdTimeTo" in answer.text


# --- Event Grid webhook (HttpRequestProcessor, EventGridExtensionConfigProvider) ---------------------------------


def grid(
    host: RunningHost, body: Any, event_type: str | None, method: str = "POST", **headers: str
) -> requests.Response:
    sent = {"Content-Type": "application/json", **headers}
    if event_type is not None:
        sent["aeg-event-type"] = event_type
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(host, method, EVENTGRID, host.system_key("eventgrid_extension"), data=data, headers=sent)


def test_validation_handshakes_event_grid_sends(host: RunningHost) -> None:
    full = {
        "id": "v",
        "topic": "t",
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-11-26T10:00:00Z",
        "dataVersion": "1",
        "data": {"validationCode": "code-1", "validationUrl": "https://rp/validate"},
    }
    assert grid(host, [full], "SubscriptionValidation").json() == {"validationResponse": "code-1"}
    # The header is compared without case, and only data.validationCode is read.
    assert grid(host, [full], "subscriptionvalidation").json() == {"validationResponse": "code-1"}
    only_code = grid(host, [{"data": {"validationCode": "code-2"}}], "SUBSCRIPTIONVALIDATION")
    assert only_code.status_code == 200 and only_code.json() == {"validationResponse": "code-2"}
    # A CloudEvents validation: one object whose data is JSON text.
    cloud = {
        "specversion": "1.0",
        "type": full["eventType"],
        "source": "s",
        "id": "c",
        "data": '{"validationCode": "code-3"}',
    }
    assert grid(host, cloud, "SubscriptionValidation").json() == {"validationResponse": "code-3"}


def test_unsubscribe_is_acknowledged_and_invokes_nothing(host: RunningHost) -> None:
    started = host.data_dir / "app" / "started.jsonl"
    before = started.read_text() if started.exists() else ""
    event = {"id": "u-1", "subject": "s", "eventType": "t", "eventTime": "2026-11-26T10:00:00Z", "data": {}}
    answer = grid(host, [{**event, "dataVersion": ""}], "Unsubscribe")
    assert answer.status_code == 202  # devhost used to answer 400
    assert (started.read_text() if started.exists() else "") == before


def test_a_notification_header_in_any_case_invokes_the_function(host: RunningHost) -> None:
    event = {
        "id": "n-1",
        "topic": "t",
        "subject": "/blobServices/default/containers/in/blobs/a.csv",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-26T10:00:00Z",
        "dataVersion": "",
        "data": {},
    }
    answer = grid(host, [event], "notification")
    assert answer.status_code == 202
    started = [json.loads(line) for line in (host.data_dir / "app" / "started.jsonl").read_text().splitlines()]
    assert [s["event"] for s in started if s["event"] == "n-1"] == ["n-1"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("eventgrid.azure.net", "eventgrid.azure.net"),
        ("eventgrid.azure.us", "eventgrid.azure.us"),
        ("attacker.example", "eventgrid.azure.net"),  # never an echo of any origin
        (None, "eventgrid.azure.net"),
    ],
)
def test_the_cloudevents_options_handshake_allows_event_grid_only(
    host: RunningHost, origin: str | None, allowed: str
) -> None:
    headers = {"WebHook-Request-Origin": origin} if origin else {}
    answer = grid(host, b"", None, method="OPTIONS", **headers)
    assert answer.status_code == 200
    assert answer.headers["WebHook-Allowed-Origin"] == allowed


# --- request bodies as the host passes them -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_content_encoding_header_reaches_the_function_with_the_body_as_sent(host: RunningHost, encoding: str) -> None:
    # The Functions host does not decompress request bodies (no request-decompression middleware): the function gets
    # the bytes and the header. devhost used to try, and answered 500 for an uncompressed body so labelled.
    plain = b'{"rows": [{"height": 150}]}'
    for body in (plain, gzip.compress(plain) if encoding == "gzip" else plain):
        answer = call(host, "POST", "/api/echo", host.function_key, data=body, headers={"Content-Encoding": encoding})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "contentEncoding": encoding,
        }
    assert "devhost internal error" not in host.log_text() and "ContentEncodingError" not in host.log_text()
