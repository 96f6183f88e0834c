"""devhost's Durable bridge: orchestrator episodes go through azure-functions-durable's own replay code.

The Durable Functions extension and the Python worker split an orchestration between them: the extension keeps
the history (DTFx events), sends it as one JSON string to the function the worker registered for the
orchestrator (df's `Orchestrator.create` handle), reads back df's `OrchestratorState` and turns its actions into
DTFx work. This module plays the extension's part over durabletask's engine: the durabletask worker hands us an
orchestrator work item (protobuf history), we translate it to the extension's JSON (`to_df_history`), run df's
`Orchestrator.handle` and turn the new tasks back into engine actions (`episode_actions`), checking names and
versions as the extension does (devhost/durable_catalog.py). The translation and what it does not support are
documented in devhost/DURABLE.md; what it needs of df's private state is in devhost/df_internals.py.

Activities and entities have their own bridges (devhost/activity_adapter.py, devhost/entity_adapter.py).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import df_internals
from devhost.df_internals import Episode, leaf_actions
from devhost.durable_catalog import ACTIVITY, ENTITY, ORCHESTRATOR, DurableCatalog, FunctionDoesNotExist
from devhost.durabletask_internals import EpisodeRejected, pb
from devhost.durabletask_internals import helpers as ph
from devhost.execution_log import execution

log = logging.getLogger("devhost.worker")

# The extension (2.x, Azure Storage backend) offers schema V3 and these long-timer limits; df answers with V3
# actions (a flat list per execution, WhenAll/WhenAny as compound actions).
UPPER_SCHEMA_VERSION = 2
MAXIMUM_SHORT_TIMER_DURATION = "6.00:00:00"
LONG_RUNNING_TIMER_INTERVAL = "3.00:00:00"

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
CALL_ENTITY, CALL_HTTP, SIGNAL_ENTITY = 7, 8, 9
UNSUPPORTED_ACTIONS = {CALL_HTTP: "call_http"}
# Signals are fire-and-forget: nothing answers them, so their engine ids only need to differ from every task id.
SIGNAL_ID_BASE = 1_000_000
# Request ids of entity calls: derived from the instance and the task, so a replayed episode sends the same id.
_REQUEST_NAMESPACE = uuid.UUID("6f1d9a52-3c0e-4bb1-9a7e-4d2f5c1e8b90")


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
    if kind in ENTITY_EVENTS:
        return _entity_event(event, played, stamp)
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
    return None  # rewind and entity-lock events: not produced for Durable Functions 1.x apps


# The engine's entity events, as the extension's (DTFx's legacy entities) message events: a call is an EventSent
# whose Input is the request message (df maps the task to the request's "id"), its answer an EventRaised named by
# that id whose Input is the response message {"result": <JSON text>[, "exceptionType"]}. A signal expects no answer:
# df does not need its EventSent, and devhost counts the signals of the history instead (new_signal_actions).
ENTITY_EVENTS = {
    "entityOperationCalled",
    "entityOperationCompleted",
    "entityOperationFailed",
    "entityOperationSignaled",
}


def _entity_event(event: pb.HistoryEvent, played: bool, stamp: str) -> dict[str, Any] | None:
    kind = event.WhichOneof("eventType")
    if kind == "entityOperationCalled":
        e = event.entityOperationCalled
        request = {
            "id": e.requestId,
            "op": e.operation,
            "signal": False,
            "input": _text(e.input),
            "parent": _text(e.parentInstanceId),
        }
        return _base(EVENT_SENT, event.eventId, played, stamp) | {
            "InstanceId": _text(e.targetInstanceId),
            "Name": "op",
            "Input": json.dumps(request),
        }
    if kind == "entityOperationCompleted":
        e = event.entityOperationCompleted
        response = {"result": _text(e.output) or "null"}
        return _base(EVENT_RAISED, -1, played, stamp) | {"Name": e.requestId, "Input": json.dumps(response)}
    if kind == "entityOperationFailed":
        f = event.entityOperationFailed
        failure = {
            "result": json.dumps(f.failureDetails.errorMessage),
            "exceptionType": _error_type(f.failureDetails.errorType),
        }
        return _base(EVENT_RAISED, -1, played, stamp) | {"Name": f.requestId, "Input": json.dumps(failure)}
    return None  # entityOperationSignaled


def context_json(
    instance_id: str, history: list[dict[str, Any]], past: Iterable[pb.HistoryEvent], new: Iterable[pb.HistoryEvent]
) -> str:
    """The orchestration trigger's JSON, as the extension sends it to the Python worker."""
    started = _execution_started([*past, *new])
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


def _execution_started(events: Iterable[pb.HistoryEvent]) -> Any:
    return next((e.executionStarted for e in events if e.HasField("executionStarted")), None)


def run_episode(handle: Callable[..., Any], body: str) -> Episode:
    """Runs df's handle for one episode, as the Python worker does with the orchestration trigger's JSON."""
    return df_internals.run_orchestrator(handle, body)


def retry_delay(options: dict[str, Any]) -> timedelta:
    """DTFx `RetryInterceptor`: firstRetryInterval x backoffCoefficient^n; df 1.x sends a coefficient of 1."""
    return timedelta(milliseconds=int(options["firstRetryIntervalInMilliseconds"]))


@dataclass(frozen=True)
class Scheduling:
    """What turning df's actions into engine actions needs besides the actions: who schedules, and what the app has.

    Without a catalog every name is taken as written (tests/durable_history.py steps one orchestrator alone).
    """

    instance_id: str
    execution_id: str
    catalog: DurableCatalog | None = None

    def registered(self, kind: str, name: str) -> str:
        """The registered spelling of a called function; FunctionDoesNotExist when the app has none."""
        return self.catalog.require(kind, name).registered if self.catalog is not None else name


def episode_actions(
    episode: Episode,
    scheduled_ids: set[int],
    instance_id: str,
    now: datetime,
    *,
    catalog: DurableCatalog | None = None,
    execution_id: str | None = None,
    past_signals: int = 0,
) -> list[pb.OrchestratorAction]:
    """Engine actions for the tasks df opened in this episode: what the extension's shim would schedule.

    df numbers its tasks in the order DTFx does (one sequence for activities, timers, sub-orchestrations and entity
    calls; a retry adds a timer after every failed attempt and a new attempt after each timer); a task whose id is
    not yet in the history is new. Signals open no task: the ones past the `past_signals` the history holds are new.
    """
    for action in leaf_actions(episode.state.get("actions", [])):
        feature = UNSUPPORTED_ACTIONS.get(int(action.get("actionType", -1)))
        if feature is not None:
            raise UnsupportedDurableFeature(
                f"context.{feature} is not supported by devhost (durable HTTP is not bridged); call an activity "
                "that makes the request instead"
            )
    scheduling = Scheduling(instance_id, execution_id or instance_id, catalog)
    actions: list[pb.OrchestratorAction] = []
    for task in df_internals.new_work(episode, scheduled_ids, past_signals):
        if task.signal is not None:
            actions.append(_signal(task.signal, task.action, scheduling))
        elif task.retry == "timer":  # the "-WithRetry timer" after a failed attempt
            actions.append(ph.new_create_timer_action(task.task_id, now + retry_delay(task.action["retryOptions"])))
        else:
            actions.append(_schedule(task.task_id, task.action, scheduling))
    return actions


def _signal(position: int, action: dict[str, Any], scheduling: Scheduling) -> pb.OrchestratorAction:
    entity, operation, encoded = _entity_target(action, scheduling)
    request_id = str(uuid.uuid5(_REQUEST_NAMESPACE, f"{scheduling.execution_id}:signal:{position}"))
    return ph.new_signal_entity_action(SIGNAL_ID_BASE + position, entity, operation, encoded, request_id)


def _entity_target(action: dict[str, Any], scheduling: Scheduling) -> tuple[Any, str, str | None]:
    """(entity id, operation, operation input as the extension stores it) of a CallEntity/SignalEntity action.

    df sends its own JSON text of the input; the extension serializes that string once more as the operation's
    input (DurableOrchestrationContext.CallDurableTaskFunctionAsync), which df's entity side decodes twice.
    """
    from durabletask.entities import EntityInstanceId

    target = EntityInstanceId.parse(str(action["instanceId"]))
    scheduling.registered(ENTITY, target.entity)
    given = action.get("input")
    return target, str(action.get("operation") or ""), json.dumps(given) if given is not None else None


def _schedule(task_id: int, action: dict[str, Any], scheduling: Scheduling) -> pb.OrchestratorAction:
    kind = int(action["actionType"])
    if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
        name = scheduling.registered(ACTIVITY, action["functionName"])
        return ph.new_schedule_task_action(task_id, name, action.get("input"), None)
    if kind in (CALL_SUB, CALL_SUB_WITH_RETRY):
        name = scheduling.registered(ORCHESTRATOR, action["functionName"])
        # Without an explicit id DTFx names the child `<parent's execution id>:<task id>` (TaskOrchestrationContext).
        child_id = action.get("instanceId") or f"{scheduling.execution_id}:{task_id}"
        version = action.get("version")
        if version is None and scheduling.catalog is not None:
            version = scheduling.catalog.versions.default_version  # as the samples-v2 versioning app shows
        return ph.new_create_sub_orchestration_action(task_id, name, child_id, action.get("input"), version)
    if kind == CREATE_TIMER:
        fire_at = datetime.fromisoformat(str(action["fireAt"]).replace("Z", "+00:00"))
        return ph.new_create_timer_action(task_id, fire_at)
    if kind == CALL_ENTITY:
        entity, operation, encoded = _entity_target(action, scheduling)
        request_id = str(uuid.uuid5(_REQUEST_NAMESPACE, f"{scheduling.execution_id}:{task_id}"))
        return ph.new_call_entity_action(task_id, scheduling.instance_id, entity, operation, encoded, request_id)
    raise UnsupportedDurableFeature(f"df action type {kind} ({action}) is not supported by devhost")


def completion_action(episode: Episode) -> pb.OrchestratorAction | None:
    """The orchestration's ending, when this episode ended it: output, continue-as-new or failure."""
    if episode.failed is not None:
        return failed_action("Exception", episode.failed)
    if not episode.state.get("isDone"):
        return None
    for action in leaf_actions(episode.state.get("actions", [])):
        if int(action.get("actionType", -1)) == CONTINUE_AS_NEW_ACTION:
            return ph.new_complete_orchestration_action(
                -1, pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW, action.get("input")
            )
    output = episode.state.get("output")
    encoded = json.dumps(output) if output is not None else None
    return ph.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_COMPLETED, encoded)


def failed_action(error_type: str, message: str) -> pb.OrchestratorAction:
    details = pb.TaskFailureDetails(errorType=error_type, errorMessage=message)
    return ph.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_FAILED, None, details)


def scheduled_ids(events: Iterable[pb.HistoryEvent]) -> set[int]:
    return {
        e.eventId
        for e in events
        if e.HasField("taskScheduled")
        or e.HasField("timerCreated")
        or e.HasField("subOrchestrationInstanceCreated")
        or e.HasField("entityOperationCalled")
    }


def execute_orchestrator(
    catalog: DurableCatalog, request: pb.OrchestratorRequest
) -> tuple[list[pb.OrchestratorAction], str | None]:
    """One episode for the engine: (actions, custom status JSON), logged as the host logs an execution."""
    past, new = list(request.pastEvents), list(request.newEvents)
    started = _execution_started(past + new)
    name = started.name if started is not None else ""
    ended = _terminated_or_suspended(past + new)
    if ended is not None:
        return ended, None
    function = catalog.find(ORCHESTRATOR, name)
    if function is None:  # the extension fails the instance with this message (DurableTaskExtension)
        return [failed_action("Exception", catalog.missing_message(ORCHESTRATOR, name))], None
    version = _text(started.version) if started is not None else None
    refusal = catalog.versions.refusal(version)
    if refusal is not None:
        if catalog.versions.failure_strategy == "fail":
            return [failed_action("VersionMismatch", refusal)], None
        raise EpisodeRejected(refusal)
    with execution(function.function) as invocation:
        episode = run_episode(function.handle, context_json(request.instanceId, to_df_history(past, new), past, new))
        try:
            actions = _episode_result(episode, catalog, request, past + new)
        except FunctionDoesNotExist as missing:  # the extension throws while scheduling: the orchestration fails
            episode.failed = str(missing)
            actions = [failed_action("Exception", str(missing))]
        if episode.failed is not None:
            invocation.fail(episode.failed)
            log.error(
                "%s: Function '%s (Orchestrator)' failed with an error. Reason: %s",
                request.instanceId,
                name,
                episode.failed,
            )
    status = episode.state.get("customStatus")
    return actions, json.dumps(status) if status is not None else None


def _episode_result(
    episode: Episode, catalog: DurableCatalog, request: pb.OrchestratorRequest, events: list[pb.HistoryEvent]
) -> list[pb.OrchestratorAction]:
    now = max(
        (e.timestamp.ToDatetime(tzinfo=UTC) for e in events if e.HasField("orchestratorStarted")),
        default=datetime.now(UTC),
    )
    actions: list[pb.OrchestratorAction] = []
    if episode.failed is None:
        started = _execution_started(events)
        execution_id = ""
        if started is not None and started.HasField("orchestrationInstance"):
            execution_id = _text(started.orchestrationInstance.executionId) or ""
        actions = episode_actions(
            episode,
            scheduled_ids(events),
            request.instanceId,
            now,
            catalog=catalog,
            execution_id=execution_id or request.instanceId,
            past_signals=sum(1 for e in events if e.HasField("entityOperationSignaled")),
        )
    completion = completion_action(episode)
    if completion is not None:
        actions.append(completion)
    return actions


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
