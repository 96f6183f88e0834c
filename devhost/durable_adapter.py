"""devhost's Durable bridge: orchestrator episodes go through azure-functions-durable's own replay code.

The Durable Functions extension and the Python worker split an orchestration between them: the extension keeps
the history (DTFx events), sends it as one JSON string to the function the worker registered for the
orchestrator (df's `Orchestrator.create` handle), reads back df's `OrchestratorState` and turns its actions into
DTFx work. This module plays the extension's part over durabletask's engine: the durabletask worker hands us an
orchestrator work item (protobuf history), we translate it to the extension's JSON (`to_df_history`), run df's
`Orchestrator.handle` and turn the new tasks back into engine actions (`episode_actions`). The translation and
what it does not support are documented in devhost/DURABLE.md.

Activities stay on durabletask's activity executor (`make_activity`): JSON in and out through the worker's
`ActivityTriggerConverter`, as on the real host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.durable_functions import ActivityTriggerConverter
from durabletask import task as dt
from durabletask.internal import helpers as ph
from durabletask.internal import orchestrator_service_pb2 as pb

from devhost.index import FunctionSpec

log = logging.getLogger(__name__)

# The extension (2.x, Azure Storage backend) offers schema V3 and these long-timer limits; df answers with V3
# actions (a flat list per execution, WhenAll/WhenAny as compound actions).
UPPER_SCHEMA_VERSION = 2
MAXIMUM_SHORT_TIMER_DURATION = "6.00:00:00"
LONG_RUNNING_TIMER_INTERVAL = "3.00:00:00"
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"

# DTFx HistoryEventType numbers, as the extension serializes them.
EXECUTION_STARTED, EXECUTION_COMPLETED, EXECUTION_TERMINATED = 0, 1, 3
TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED = 7, 8, 9
TIMER_CREATED, TIMER_FIRED = 10, 11
ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED = 12, 13
EVENT_SENT, EVENT_RAISED, CONTINUE_AS_NEW = 14, 15, 16
EXECUTION_SUSPENDED, EXECUTION_RESUMED = 19, 20

# df ActionType numbers (azure/durable_functions/models/actions/ActionType.py).
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB, CALL_SUB_WITH_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW_ACTION, CREATE_TIMER, WAIT_FOR_EVENT = 4, 5, 6
UNSUPPORTED_ACTIONS = {7: "call_entity", 8: "call_http", 9: "signal_entity"}


class UnsupportedDurableFeature(Exception):
    """The orchestrator used a df API devhost does not run; the message names it and what to use instead."""


def _timestamp(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str | None:
    """A protobuf StringValue field as the extension passes it: the JSON text, or null."""
    return value.value if value is not None and value.ByteSize() else None


def _error_type(name: str) -> str:
    # durabletask qualifies the type (`builtins.ValueError`); the Python worker reports `type(exc).__name__`.
    return name.rsplit(".", 1)[-1] or "Exception"


def activity_failure(name: str, details: pb.TaskFailureDetails) -> tuple[str, str]:
    """(Reason, Details) of a TaskFailed event as the extension writes it for a failed Python activity.

    The worker reports `<Type>: <message>`; the extension's reason is `Activity function '<name>' failed: ` plus
    that, and the details a serialized exception whose Message is the worker's text.
    """
    message = f"{_error_type(details.errorType)}: {details.errorMessage}"
    serialized = {
        "$type": "System.Exception, System.Private.CoreLib",
        "ClassName": "System.Exception",
        "Message": message,
        "StackTraceString": _user_frames(_text(details.stackTrace)) if details.HasField("stackTrace") else None,
    }
    return f"Activity function '{name}' failed: {message}", json.dumps(serialized)


def _user_frames(stack: str | None) -> str | None:
    """The app's frames of an activity's stack: the engine's and devhost's own frames are not the app's."""
    if not stack:
        return stack
    blocks = re.split(r"(?m)^(?=  File )", stack)
    kept = [b for b in blocks if not re.match(r'  File "[^"]*(/durabletask/|/devhost/)', b)]
    return "".join(kept)


def sub_orchestration_failure(name: str, details: pb.TaskFailureDetails) -> tuple[str, str]:
    return f"Orchestrator function '{name}' failed: {details.errorMessage}", ""


def to_df_history(past: Sequence[pb.HistoryEvent], new: Sequence[pb.HistoryEvent]) -> list[dict[str, Any]]:
    """The engine's history as the extension's JSON history events (`IsPlayed` true for past episodes)."""
    names: dict[int, str] = {}
    out: list[dict[str, Any]] = []
    for played, events in ((True, past), (False, new)):
        for event in events:
            converted = _convert(event, played, names)
            if converted is not None:
                out.append(converted)
    # df needs [OrchestratorStarted, ExecutionStarted, ...]: the engine may put ExecutionStarted first.
    if out and out[0]["EventType"] != ORCHESTRATOR_STARTED:
        first = next((e for e in out if e["EventType"] == ORCHESTRATOR_STARTED), None)
        stamp = first["Timestamp"] if first else out[0]["Timestamp"]
        out.insert(0, _base(ORCHESTRATOR_STARTED, -1, bool(past), stamp))
    return out


def _base(kind: int, event_id: int, played: bool, stamp: str) -> dict[str, Any]:
    return {"EventType": kind, "EventId": event_id, "IsPlayed": played, "Timestamp": stamp}


def _convert(event: pb.HistoryEvent, played: bool, names: dict[int, str]) -> dict[str, Any] | None:
    stamp = _timestamp(event.timestamp.ToDatetime(tzinfo=UTC))
    kind = event.WhichOneof("eventType")
    if kind == "orchestratorStarted":
        return _base(ORCHESTRATOR_STARTED, -1, played, stamp)
    if kind == "orchestratorCompleted":
        return _base(ORCHESTRATOR_COMPLETED, -1, played, stamp)
    if kind == "executionStarted":
        e = event.executionStarted
        return _base(EXECUTION_STARTED, -1, played, stamp) | {
            "Name": e.name,
            "Version": _text(e.version) or "",
            "Input": _text(e.input),
        }
    if kind == "taskScheduled":
        names[event.eventId] = event.taskScheduled.name
        return _base(TASK_SCHEDULED, event.eventId, played, stamp) | {
            "Name": event.taskScheduled.name,
            "Version": "",
            "Input": _text(event.taskScheduled.input),
        }
    if kind == "taskCompleted":
        e = event.taskCompleted
        return _base(TASK_COMPLETED, -1, played, stamp) | {
            "TaskScheduledId": e.taskScheduledId,
            "Result": _text(e.result),
        }
    if kind == "taskFailed":
        e = event.taskFailed
        reason, details = activity_failure(names.get(e.taskScheduledId, "?"), e.failureDetails)
        return _base(TASK_FAILED, -1, played, stamp) | {
            "TaskScheduledId": e.taskScheduledId,
            "Reason": reason,
            "Details": details,
        }
    if kind == "timerCreated":
        fire_at = _timestamp(event.timerCreated.fireAt.ToDatetime(tzinfo=UTC))
        return _base(TIMER_CREATED, event.eventId, played, stamp) | {"FireAt": fire_at}
    if kind == "timerFired":
        fire_at = _timestamp(event.timerFired.fireAt.ToDatetime(tzinfo=UTC))
        return _base(TIMER_FIRED, -1, played, stamp) | {"TimerId": event.timerFired.timerId, "FireAt": fire_at}
    if kind == "subOrchestrationInstanceCreated":
        e = event.subOrchestrationInstanceCreated
        names[event.eventId] = e.name
        return _base(SUB_CREATED, event.eventId, played, stamp) | {
            "Name": e.name,
            "InstanceId": e.instanceId,
            "Input": _text(e.input),
        }
    if kind == "subOrchestrationInstanceCompleted":
        e = event.subOrchestrationInstanceCompleted
        return _base(SUB_COMPLETED, -1, played, stamp) | {
            "TaskScheduledId": e.taskScheduledId,
            "Result": _text(e.result),
        }
    if kind == "subOrchestrationInstanceFailed":
        e = event.subOrchestrationInstanceFailed
        reason, details = sub_orchestration_failure(names.get(e.taskScheduledId, "?"), e.failureDetails)
        return _base(SUB_FAILED, -1, played, stamp) | {
            "TaskScheduledId": e.taskScheduledId,
            "Reason": reason,
            "Details": details,
        }
    if kind == "eventRaised":
        return _base(EVENT_RAISED, -1, played, stamp) | {
            "Name": event.eventRaised.name,
            "Input": _text(event.eventRaised.input),
        }
    if kind == "eventSent":
        e = event.eventSent
        return _base(EVENT_SENT, event.eventId, played, stamp) | {
            "InstanceId": e.instanceId,
            "Name": e.name,
            "Input": _text(e.input),
        }
    if kind == "executionTerminated":
        return _base(EXECUTION_TERMINATED, -1, played, stamp)
    if kind == "executionSuspended":
        return _base(EXECUTION_SUSPENDED, -1, played, stamp)
    if kind == "executionResumed":
        return _base(EXECUTION_RESUMED, -1, played, stamp)
    if kind == "continueAsNew":
        return _base(CONTINUE_AS_NEW, -1, played, stamp) | {"Input": _text(event.continueAsNew.input)}
    if kind == "executionCompleted":
        return _base(EXECUTION_COMPLETED, -1, played, stamp)
    return None  # entity and rewind events: not produced for Durable Functions 1.x apps


def context_json(
    instance_id: str, history: list[dict[str, Any]], past: Iterable[pb.HistoryEvent], new: Iterable[pb.HistoryEvent]
) -> str:
    """The orchestration trigger's JSON, as the extension sends it to the Python worker."""
    started = next((e.executionStarted for e in [*past, *new] if e.HasField("executionStarted")), None)
    parent = None
    if started is not None and started.HasField("parentInstance"):
        parent = started.parentInstance.orchestrationInstance.instanceId or None
    return json.dumps(
        {
            "history": history,
            "input": _text(started.input) if started is not None else None,
            "instanceId": instance_id,
            "isReplaying": any(e.get("IsPlayed") for e in history[2:]),
            "parentInstanceId": parent,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
            "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER_DURATION,
            "longRunningTimerIntervalDuration": LONG_RUNNING_TIMER_INTERVAL,
        }
    )


@dataclass
class Episode:
    """One run of df's replay: its `OrchestratorState` JSON and the context it ran with (for new task ids)."""

    state: dict[str, Any]
    context: Any
    failed: str | None  # the orchestrator's error (df's `error`), when it raised


def run_episode(spec_function: Callable[..., Any], body: str) -> Episode:
    """Runs df's handle for one episode, as the Python worker does with the orchestration trigger's JSON.

    This is `Orchestrator.create(fn)`'s handle (decorators/durable_app.py registers it for each orchestrator),
    inlined so we keep the context: the extension learns new task ids by replaying df's actions through DTFx;
    we read the same ids from df's own open tasks.
    """
    from azure.durable_functions.models import DurableOrchestrationContext
    from azure.durable_functions.orchestrator import Orchestrator

    generator_function = getattr(spec_function, "orchestrator_function", None)
    if generator_function is None:
        raise TypeError(f"{spec_function!r} is not a df orchestrator handle (no orchestrator_function)")
    ctx = DurableOrchestrationContext.from_json(body)
    ctx._input_expected_type = getattr(spec_function, "_df_input_type", None)  # as the handle does
    try:
        state_text = Orchestrator(generator_function).handle(ctx)
    except Exception as err:
        text = str(err)
        if OUT_OF_PROC_MARKER not in text:
            raise
        error, _, state = text.partition(OUT_OF_PROC_MARKER)
        parsed = json.loads(state)
        return Episode(parsed, ctx, parsed.get("error") or error)
    return Episode(json.loads(state_text), ctx, None)


def _leaf_actions(actions: Any) -> Iterable[dict[str, Any]]:
    if isinstance(actions, list):
        for item in actions:
            yield from _leaf_actions(item)
    elif isinstance(actions, dict):
        if "compoundActions" in actions:
            yield from _leaf_actions(actions["compoundActions"])
        else:
            yield actions


def _action_json(task: Any) -> dict[str, Any]:
    action = task.action_repr[0] if isinstance(task.action_repr, list) else task.action_repr
    return dict(action.to_json())


def retry_delay(options: dict[str, Any]) -> timedelta:
    """DTFx `RetryInterceptor`: firstRetryInterval x backoffCoefficient^n; df 1.x sends a coefficient of 1."""
    return timedelta(milliseconds=int(options["firstRetryIntervalInMilliseconds"]))


def episode_actions(
    episode: Episode, scheduled_ids: set[int], execution_id: str, now: datetime
) -> list[pb.OrchestratorAction]:
    """Engine actions for the tasks df opened in this episode: what the extension's shim would schedule.

    df numbers its tasks in the order DTFx does (one sequence for activities, timers and sub-orchestrations;
    a retry adds a timer after every failed attempt and a new attempt after each timer); a task whose id is
    not yet in the history is new.
    """
    for action in _leaf_actions(episode.state.get("actions", [])):
        feature = UNSUPPORTED_ACTIONS.get(int(action.get("actionType", -1)))
        if feature is not None:
            raise UnsupportedDurableFeature(
                f"context.{feature} is not supported by devhost (Durable entities and durable HTTP are not "
                "bridged); call an activity instead"
            )
    from azure.durable_functions.models.actions.NoOpAction import NoOpAction
    from azure.durable_functions.models.Task import AtomicTask, RetryAbleTask

    actions: list[pb.OrchestratorAction] = []
    opened = [
        (key, task)
        for key, task in episode.context.open_tasks.items()
        if isinstance(key, int) and isinstance(task, AtomicTask) and key not in scheduled_ids
    ]
    for task_id, task in sorted(opened, key=lambda pair: pair[0]):
        raw = task.action_repr[0] if isinstance(task.action_repr, list) else task.action_repr
        if isinstance(raw, NoOpAction):
            parent = task.parent
            if not isinstance(parent, RetryAbleTask):
                raise UnsupportedDurableFeature(f"df opened an internal task {task_id} devhost cannot map")
            inner = parent.actions[0] if isinstance(parent.actions, list) else parent.actions
            retried = dict(inner.to_json())
            if parent.is_waiting_on_timer:  # the "-WithRetry timer" after a failed attempt
                actions.append(ph.new_create_timer_action(task_id, now + retry_delay(retried["retryOptions"])))
            else:  # the next attempt
                actions.append(_schedule(task_id, retried, execution_id))
            continue
        actions.append(_schedule(task_id, _action_json(task), execution_id))
    return actions


def _schedule(task_id: int, action: dict[str, Any], execution_id: str) -> pb.OrchestratorAction:
    kind = int(action["actionType"])
    if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
        return ph.new_schedule_task_action(task_id, action["functionName"], action.get("input"), None)
    if kind in (CALL_SUB, CALL_SUB_WITH_RETRY):
        # Without an explicit id DTFx names the child `<parent's execution id>:<task id>` (TaskOrchestrationContext).
        child_id = action.get("instanceId") or f"{execution_id}:{task_id}"
        return ph.new_create_sub_orchestration_action(
            task_id, action["functionName"], child_id, action.get("input"), action.get("version") or None
        )
    if kind == CREATE_TIMER:
        fire_at = datetime.fromisoformat(str(action["fireAt"]).replace("Z", "+00:00"))
        return ph.new_create_timer_action(task_id, fire_at)
    raise UnsupportedDurableFeature(f"df action type {kind} ({action}) is not supported by devhost")


def completion_action(episode: Episode, name: str) -> pb.OrchestratorAction | None:
    """The orchestration's ending, when this episode ended it: output, continue-as-new or failure."""
    if episode.failed is not None:
        details = pb.TaskFailureDetails(errorType="Exception", errorMessage=episode.failed)
        return ph.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_FAILED, None, details)
    if not episode.state.get("isDone"):
        return None
    for action in _leaf_actions(episode.state.get("actions", [])):
        if int(action.get("actionType", -1)) == CONTINUE_AS_NEW_ACTION:
            return ph.new_complete_orchestration_action(
                -1, pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW, action.get("input")
            )
    output = episode.state.get("output")
    encoded = json.dumps(output) if output is not None else None
    return ph.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_COMPLETED, encoded)


def scheduled_ids(events: Iterable[pb.HistoryEvent]) -> set[int]:
    return {
        e.eventId
        for e in events
        if e.HasField("taskScheduled") or e.HasField("timerCreated") or e.HasField("subOrchestrationInstanceCreated")
    }


def execute_orchestrator(
    handles: dict[str, Callable[..., Any]], request: pb.OrchestratorRequest
) -> tuple[list[pb.OrchestratorAction], str | None]:
    """One episode for the engine: (actions, custom status JSON)."""
    past, new = list(request.pastEvents), list(request.newEvents)
    started = next((e.executionStarted for e in past + new if e.HasField("executionStarted")), None)
    name = started.name if started is not None else ""
    handle = handles.get(name)
    if handle is None:
        raise UnsupportedDurableFeature(f"no orchestrator function named {name!r} is registered in this app")
    ended = _terminated_or_suspended(past + new)
    if ended is not None:
        return ended, None
    history = to_df_history(past, new)
    episode = run_episode(handle, context_json(request.instanceId, history, past, new))
    now = max(
        (e.timestamp.ToDatetime(tzinfo=UTC) for e in past + new if e.HasField("orchestratorStarted")),
        default=datetime.now(UTC),
    )
    actions: list[pb.OrchestratorAction] = []
    if episode.failed is None:
        execution_id = ""
        if started is not None and started.HasField("orchestrationInstance"):
            execution_id = _text(started.orchestrationInstance.executionId) or ""
        actions = episode_actions(episode, scheduled_ids(past + new), execution_id or request.instanceId, now)
    completion = completion_action(episode, name)
    if completion is not None:
        actions.append(completion)
    status = episode.state.get("customStatus")
    return actions, json.dumps(status) if status is not None else None


def _terminated_or_suspended(events: list[pb.HistoryEvent]) -> list[pb.OrchestratorAction] | None:
    """The extension's own handling, without calling the worker: a terminated instance ends; a suspended one
    waits (its new events stay in the history and reach df after the resume)."""
    suspended = False
    for event in events:
        if event.HasField("executionTerminated"):
            output = _text(event.executionTerminated.input)
            return [ph.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_TERMINATED, output)]
        if event.HasField("executionSuspended"):
            suspended = True
        elif event.HasField("executionResumed"):
            suspended = False
    return [] if suspended else None


def make_activity(
    spec: FunctionSpec, loop: asyncio.AbstractEventLoop | None
) -> Callable[[dt.ActivityContext, Any], Any]:
    """An activity callable: JSON in through the worker's converter, JSON out, async functions on `loop`."""
    arg_name = spec.trigger["name"]
    wants_context = "context" in spec.parameters

    def activity(ctx: dt.ActivityContext, activity_input: Any) -> Any:
        # The real worker receives a JSON string and decodes it with the library's converter.
        datum = func.meta.Datum(type="json", value=json.dumps(activity_input))
        value = ActivityTriggerConverter.decode(datum, trigger_metadata=None)
        kwargs: dict[str, Any] = {arg_name: value}
        if wants_context:
            from devhost.invocation import DevContext, child_traceparent

            kwargs["context"] = DevContext(spec.name, "", child_traceparent(None))
        if spec.is_async:
            if loop is None:
                raise RuntimeError(f"activity {spec.name} is async but no event loop runs")
            future: Future[Any] = asyncio.run_coroutine_threadsafe(spec.func(**kwargs), loop)
            result = future.result()
        else:
            result = spec.func(**kwargs)
        encoded = ActivityTriggerConverter.encode(result, expected_type=None)
        return json.loads(str(encoded.value)) if encoded.value is not None else None

    activity.__name__ = spec.name
    return activity
