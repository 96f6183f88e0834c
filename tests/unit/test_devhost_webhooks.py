"""The parsing behind devhost's webhooks, as Azure's extensions do it: Event Grid deliveries (HttpRequestProcessor,
Microsoft.Azure.WebJobs.Extensions.EventGrid), Durable API query parameters (HttpRequestMessageExtensions.
GetQueryNameValuePairs, HttpApiHandler) and the `historyEvents` of a status (DurableClient.
GetDurableOrchestrationStatusAsync)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from durabletask import history as h
from durabletask import task

from devhost.durable_api import Query, is_json_media_type
from devhost.eventgrid import DeliveryError, allowed_origin, parse_delivery
from devhost.history_view import history_events

VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


@pytest.mark.parametrize("header", ["SubscriptionValidation", "subscriptionvalidation", " SUBSCRIPTIONVALIDATION "])
def test_the_validation_header_is_read_without_case(header: str) -> None:
    delivery = parse_delivery(json.dumps([{"data": {"validationCode": "c"}}]).encode(), header)
    assert (delivery.kind, delivery.validation_code) == ("validation", "c")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([{"data": {"validationCode": "only-code"}}], "only-code"),
        ([{"eventType": VALIDATION, "id": "1", "data": {"validationCode": "full"}}], "full"),
        ({"specversion": "1.0", "type": VALIDATION, "data": '{"validationCode": "cloud-text"}'}, "cloud-text"),
        ({"specversion": "1.0", "type": VALIDATION, "data": {"validationCode": "cloud-object"}}, "cloud-object"),
    ],
)
def test_a_validation_needs_only_data_validation_code(body: object, code: str) -> None:
    assert parse_delivery(json.dumps(body).encode(), "SubscriptionValidation").validation_code == code


@pytest.mark.parametrize(
    "body",
    [
        [{"data": {}}],
        [{"data": {"validationCode": ""}}],
        [{"data": {"validationCode": "a"}}, {"data": {"validationCode": "b"}}],
        [{"eventType": "Microsoft.Storage.BlobCreated", "data": {"validationCode": "a"}}],
        [{"eventType": ["x"], "data": {"validationCode": "a"}}],
        "text",
    ],
)
def test_a_handshake_event_grid_never_sends_is_refused(body: object) -> None:
    with pytest.raises(DeliveryError, match="SubscriptionValidation delivery must hold one"):
        parse_delivery(json.dumps(body).encode(), "SubscriptionValidation")


def test_unsubscribe_is_acknowledged_whatever_the_body() -> None:
    assert parse_delivery(b"not json", "unsubscribe").kind == "unsubscribe"


@pytest.mark.parametrize(("header", "shown"), [(None, "is missing"), ("", "is ''"), ("Bogus", "is 'Bogus'")])
def test_a_delivery_without_a_known_header_is_refused(header: str | None, shown: str) -> None:
    cloud = {"id": "c", "source": "s", "type": "t", "specversion": "1.0", "data": {}}
    with pytest.raises(DeliveryError, match=f"header aeg-event-type {shown}; expected Notification"):
        parse_delivery(json.dumps(cloud).encode(), header)


def test_a_notification_of_one_object_is_a_delivery_of_one() -> None:
    event = {
        "id": "e",
        "subject": "s",
        "eventType": "t",
        "eventTime": "2026-11-26T10:00:00Z",
        "data": {},
        "dataVersion": "",
    }
    assert parse_delivery(json.dumps(event).encode(), "NOTIFICATION").events == (event,)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("eventgrid.azure.net", "eventgrid.azure.net"),
        ("eventgrid.azure.cn", "eventgrid.azure.cn"),
        ("eventgrid.azure.net.attacker.example", "eventgrid.azure.net"),
        ("", "eventgrid.azure.net"),
        (None, "eventgrid.azure.net"),
    ],
)
def test_the_allowed_origin_is_event_grids_never_an_echo(origin: str | None, allowed: str) -> None:
    assert allowed_origin(origin) == allowed


def test_query_names_are_read_without_case_and_flags_as_bool_try_parse() -> None:
    query = Query([("ShowInput", "FALSE"), ("runtimeStatus", "Running"), ("RUNTIMESTATUS", "Failed"), ("timeout", "x")])
    assert query.flag("showInput", True) is False
    assert query.flag("showHistory", False) is False
    assert Query([("showHistory", "yes")]).flag("showHistory", False) is False  # not a bool: the default
    assert query.get("runtimestatus") == "Running,Failed"
    assert query.seconds("timeout") is None and Query([("timeout", "2.5")]).seconds("timeout") == 2.5
    assert Query([("timeout", "nan")]).seconds("timeout") is None


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [("application/json", True), ("Application/JSON; charset=utf-8", True), ("text/plain", False), (None, False)],
)
def test_raise_event_accepts_the_json_media_type_only(content_type: str | None, accepted: bool) -> None:
    assert is_json_media_type(content_type) is accepted


def _history() -> tuple[list[h.HistoryEvent], datetime]:
    zero = datetime(1970, 1, 1, tzinfo=UTC)
    t0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    failure = task.FailureDetails("boom", "builtins.ValueError", None)
    events: list[h.HistoryEvent] = [
        h.OrchestratorStartedEvent(-1, t0),
        h.ExecutionStartedEvent(-1, zero, name="orch", input='"in"'),
        h.TaskScheduledEvent(0, zero, name="act", input='"a"'),
        h.TimerCreatedEvent(1, zero, fire_at=t0 + timedelta(seconds=5)),
        h.OrchestratorCompletedEvent(-1, zero),
        h.OrchestratorStartedEvent(-1, t0 + timedelta(seconds=2)),
        h.TaskCompletedEvent(-1, zero, task_scheduled_id=0, result='{"ok": 1}'),
        h.TaskScheduledEvent(2, zero, name="bad", input="null"),
        h.OrchestratorCompletedEvent(-1, zero),
        h.OrchestratorStartedEvent(-1, t0 + timedelta(seconds=6)),
        h.TimerFiredEvent(-1, zero, fire_at=t0 + timedelta(seconds=5), timer_id=1),
        h.TaskFailedEvent(-1, zero, task_scheduled_id=2, failure_details=failure),
        h.OrchestratorCompletedEvent(-1, zero),
        h.ExecutionCompletedEvent(-1, zero, orchestration_status=3, result=None, failure_details=failure),
    ]
    return events, t0


def test_history_events_fold_scheduling_into_answers_and_carry_real_times() -> None:
    events, t0 = _history()
    view = history_events(
        events, created=t0, last_updated=t0 + timedelta(seconds=7), show_input=True, show_output=False
    )
    assert [e["EventType"] for e in view] == [
        "ExecutionStarted",
        "TimerCreated",
        "TaskCompleted",
        "TimerFired",
        "TaskFailed",
        "ExecutionCompleted",
    ]
    started, timer, completed, fired, failed, done = view
    assert started == {
        "EventType": "ExecutionStarted",
        "Timestamp": "2026-11-26T10:00:00.000000Z",
        "FunctionName": "orch",
        "Input": '"in"',
    }
    assert timer["FireAt"] == "2026-11-26T10:00:05.000000Z" and timer["Timestamp"] == "2026-11-26T10:00:00.000000Z"
    assert completed == {
        "EventType": "TaskCompleted",
        "Timestamp": "2026-11-26T10:00:02.000000Z",
        "ScheduledTime": "2026-11-26T10:00:00.000000Z",
        "FunctionName": "act",
        "Input": '"a"',
    }
    assert "TimerId" not in fired
    assert failed["FunctionName"] == "bad" and failed["Reason"] == "Activity function 'bad' failed: ValueError: boom"
    assert json.loads(failed["Details"])["Message"] == "ValueError: boom"
    assert done == {
        "EventType": "ExecutionCompleted",
        "Timestamp": "2026-11-26T10:00:07.000000Z",
        "OrchestrationStatus": "Failed",
    }


def test_history_results_only_with_show_history_output_and_inputs_only_with_show_input() -> None:
    events, t0 = _history()
    view = history_events(events, created=t0, last_updated=t0, show_input=False, show_output=True)
    assert all("Input" not in e for e in view)
    completed = next(e for e in view if e["EventType"] == "TaskCompleted")
    assert completed["Result"] == {"ok": 1}  # parsed, as the extension's ParseToJToken does
    assert view[-1]["Result"] == "boom"
