"""devhost's Durable bridge: the extension's JSON history from the engine's events, df's answers to engine actions."""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from devhost import durable_adapter as bridge
from devhost.durabletask_internals import helpers as ph
from devhost.durabletask_internals import pb
from tests.durable_history import OrchestrationReplay

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def test_engine_history_becomes_the_extensions_json_history() -> None:
    failure = pb.TaskFailureDetails(errorType="builtins.ValueError", errorMessage="bad row 7")
    past = [
        ph.new_orchestrator_started_event(T0),
        ph.new_execution_started_event("scoring", "run-1", '{"a": 1}'),
        ph.new_task_scheduled_event(0, "score_chunk", '{"i": 0}'),
        ph.new_timer_created_event(1, T0 + timedelta(seconds=5)),
    ]
    new = [
        ph.new_orchestrator_started_event(T0 + timedelta(seconds=6)),
        pb.HistoryEvent(eventId=-1, taskFailed=pb.TaskFailedEvent(taskScheduledId=0, failureDetails=failure)),
        ph.new_timer_fired_event(1, T0 + timedelta(seconds=5)),
        ph.new_event_raised_event("approve", '"grace"'),
    ]
    history = bridge.to_df_history(past, new)
    assert [e["EventType"] for e in history] == [12, 0, 4, 10, 12, 6, 11, 15]
    assert [e["IsPlayed"] for e in history] == [True] * 4 + [False] * 4
    assert history[0]["Timestamp"] == "2026-11-30T22:00:00.000000Z"
    assert history[1]["Input"] == '{"a": 1}' and history[2]["EventId"] == 0 and history[2]["Name"] == "score_chunk"
    assert history[5]["Reason"] == "Activity function 'score_chunk' failed: ValueError: bad row 7"
    assert json.loads(history[5]["Details"])["Message"] == "ValueError: bad row 7"
    assert history[6]["TimerId"] == 1 and history[7]["Name"] == "approve" and history[7]["Input"] == '"grace"'
    body = json.loads(bridge.context_json("run-1", history, past, new))
    assert body["input"] == '{"a": 1}' and body["instanceId"] == "run-1" and body["upperSchemaVersion"] == 2


def _handle(fn: Any) -> Any:
    return df.Orchestrator.create(fn)


def test_retry_makes_a_timer_after_every_failed_attempt_including_the_last() -> None:
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
        try:
            yield context.call_activity_with_retry("flaky", options, None)
        except Exception as err:
            return {"error": str(err), "at": context.current_utc_datetime.isoformat()}
        return None

    run = OrchestrationReplay(_handle(orchestrator), start=T0)
    kinds = []
    [task] = run.step()
    while not run.done:
        kinds.append(task.kind)
        if task.kind == "timer":
            run.fire(task)
        else:
            run.fail(task, f"attempt {len(kinds)}", "RuntimeError")
        scheduled = run.step()
        task = scheduled[0] if scheduled else task
    assert kinds == ["activity", "timer", "activity", "timer", "activity", "timer"]
    assert run.output["at"] == (T0 + timedelta(seconds=3)).isoformat()
    assert run.output["error"].startswith("Activity function 'flaky' failed: RuntimeError: attempt 5 \n ")


def test_task_all_fails_at_the_first_failure_and_task_any_returns_the_winner() -> None:
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        winner = yield context.task_any([context.call_activity("a", 1), context.call_activity("b", 2)])
        try:
            yield context.task_all([context.call_activity("c", 3), context.call_activity("d", 4)])
        except Exception as err:
            return {"winner": winner.result, "error": str(err).split(" \n ")[0]}
        return None

    run = OrchestrationReplay(_handle(orchestrator))
    _a, b = run.step()
    run.complete(b, "b won")
    _c, d = run.step()
    run.fail(d, "d broke")  # c never answers: task_all does not wait for it
    assert run.step() == []
    assert run.output == {"winner": "b won", "error": "Activity function 'd' failed: Exception: d broke"}


def test_task_all_of_nothing_is_none_in_df() -> None:
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return {"results": (yield context.task_all([]))}

    run = OrchestrationReplay(_handle(orchestrator))
    assert run.step() == []
    assert run.output == {"results": None}


def test_durable_http_is_refused_with_a_clear_error() -> None:
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return (yield context.call_http("GET", "https://example.invalid/"))

    with pytest.raises(bridge.UnsupportedDurableFeature, match=r"context\.call_http is not supported by devhost"):
        OrchestrationReplay(_handle(orchestrator)).step()


def test_entity_calls_become_the_extensions_request_and_response_messages() -> None:
    called = pb.EntityOperationCalledEvent(
        requestId="r-1",
        operation="add",
        input=ph.get_string_value('"1"'),
        parentInstanceId=ph.get_string_value("run-1"),
        targetInstanceId=ph.get_string_value("@counter@k"),
    )
    past = [
        ph.new_orchestrator_started_event(T0),
        ph.new_execution_started_event("counter", "run-1", None),
        pb.HistoryEvent(eventId=0, entityOperationCalled=called),
        pb.HistoryEvent(eventId=1_000_000, entityOperationSignaled=pb.EntityOperationSignaledEvent(requestId="s")),
    ]
    done = pb.EntityOperationCompletedEvent(requestId="r-1", output=ph.get_string_value("6"))
    failure = pb.TaskFailureDetails(errorType="Exception", errorMessage="This entity failed")
    new = [
        ph.new_orchestrator_started_event(T0),
        pb.HistoryEvent(eventId=-1, entityOperationCompleted=done),
        pb.HistoryEvent(
            eventId=-1, entityOperationFailed=pb.EntityOperationFailedEvent(requestId="r-2", failureDetails=failure)
        ),
    ]
    history = bridge.to_df_history(past, new)
    # DTFx's legacy entity messages: the call is an EventSent whose Input is the request (df keys the task by its id),
    # the answer an EventRaised named by that id; a signal needs no event (nothing answers it).
    assert [e["EventType"] for e in history] == [12, 0, 14, 12, 15, 15]
    assert history[2]["EventId"] == 0 and json.loads(history[2]["Input"])["id"] == "r-1"
    assert history[4]["Name"] == "r-1" and json.loads(history[4]["Input"]) == {"result": "6"}
    assert json.loads(history[5]["Input"]) == {"result": '"This entity failed"', "exceptionType": "Exception"}
