"""`historyEvents` of an instance status (`?showHistory=true`), in the shape the Durable extension gives it.

The extension (DurableClient.GetDurableOrchestrationStatusAsync, azure-functions-durable-extension 2.13) takes
the DTFx history and, per event: names the `EventType` instead of numbering it; folds each TaskScheduled into the
TaskCompleted/TaskFailed that answers it (`FunctionName`, `ScheduledTime`, its `Input`) and drops it, likewise
SubOrchestrationInstanceCreated into its Completed/Failed; renames ExecutionStarted's `Name` to `FunctionName`;
names ExecutionCompleted's `OrchestrationStatus`; drops OrchestratorStarted/OrchestratorCompleted, `EventId`,
`IsPlayed`, TimerFired's `TimerId`; keeps `Result` (parsed as JSON) only with `showHistoryOutput=true` and every
`Input` (as the JSON text it is) only with `showInput` (default true).

durabletask's in-memory engine leaves most events' timestamps at 0 (1970); an event without one gets the time of
the episode that recorded it (the OrchestratorStarted before it), the first ExecutionStarted the instance's
creation time, the final ExecutionCompleted its last update: the times the extension would have written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from durabletask import history as h

from devhost.durabletask_internals import pb

_EPOCH_YEAR = 1970
_STATUS_NAMES: dict[int, str] = {
    int(pb.ORCHESTRATION_STATUS_RUNNING): "Running",
    int(pb.ORCHESTRATION_STATUS_COMPLETED): "Completed",
    int(pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW): "ContinuedAsNew",
    int(pb.ORCHESTRATION_STATUS_FAILED): "Failed",
    int(pb.ORCHESTRATION_STATUS_CANCELED): "Canceled",
    int(pb.ORCHESTRATION_STATUS_TERMINATED): "Terminated",
    int(pb.ORCHESTRATION_STATUS_PENDING): "Pending",
    int(pb.ORCHESTRATION_STATUS_SUSPENDED): "Suspended",
}


def iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _real(moment: datetime | None) -> bool:
    return moment is not None and moment.year > _EPOCH_YEAR


def _parsed(text: str | None) -> Any:
    """A Result as the extension parses it (ParseToJToken): JSON, else the raw text."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except ValueError:
        return text


def _failure(kind: str, name: str, details: Any) -> dict[str, Any]:
    """Reason and Details of a failed task, as devhost's bridge hands them to df (devhost/DURABLE.md)."""
    from devhost.durable_adapter import activity_failure, sub_orchestration_failure

    failure = pb.TaskFailureDetails(
        errorType=getattr(details, "error_type", "") or "",
        errorMessage=getattr(details, "message", "") or "",
    )
    stack = getattr(details, "stack_trace", None)
    if stack:
        failure.stackTrace.value = stack
    maker = activity_failure if kind == "TaskFailed" else sub_orchestration_failure
    reason, text = maker(name, failure)
    return {"Reason": reason, "Details": text}


def history_events(
    events: Sequence[h.HistoryEvent],
    *,
    created: datetime,
    last_updated: datetime,
    show_input: bool,
    show_output: bool,
) -> list[dict[str, Any]]:
    """The extension's `historyEvents` for one execution's history."""
    scheduled: dict[tuple[str, int], dict[str, Any]] = {}  # (kind, event id) -> the scheduling entry
    out: list[dict[str, Any] | None] = []
    episode = created
    for position, event in enumerate(events):
        if isinstance(event, h.OrchestratorStartedEvent):
            episode = event.timestamp if _real(event.timestamp) else episode
            continue
        if isinstance(event, h.OrchestratorCompletedEvent):
            continue
        if _real(event.timestamp):
            stamp = event.timestamp
        elif isinstance(event, h.ExecutionStartedEvent):
            stamp = created
        elif isinstance(event, h.ExecutionCompletedEvent) and position == len(events) - 1:
            stamp = last_updated
        else:
            stamp = episode
        entry = _entry(event, iso(stamp), show_output)
        if entry is None:
            continue
        if isinstance(event, h.TaskScheduledEvent | h.SubOrchestrationInstanceCreatedEvent):
            kind = "task" if isinstance(event, h.TaskScheduledEvent) else "sub"
            scheduled[(kind, event.event_id)] = {"entry": entry, "index": len(out)}
        elif isinstance(event, h.TaskCompletedEvent | h.TaskFailedEvent):
            _fold(entry, scheduled.pop(("task", event.task_scheduled_id), None), out, event)
        elif isinstance(event, h.SubOrchestrationInstanceCompletedEvent | h.SubOrchestrationInstanceFailedEvent):
            _fold(entry, scheduled.pop(("sub", event.task_scheduled_id), None), out, event)
        out.append(entry)
    kept = [entry for entry in out if entry is not None]
    if not show_input:
        for entry in kept:
            entry.pop("Input", None)
    return kept


def _fold(entry: dict[str, Any], origin: dict[str, Any] | None, out: list[dict[str, Any] | None], event: Any) -> None:
    """Moves the scheduling event's name, time and input into its answer, and drops the scheduling event."""
    if origin is None:
        return
    source = origin["entry"]
    entry["ScheduledTime"] = source["Timestamp"]
    entry["FunctionName"] = source["Name"]
    entry["Input"] = source.get("Input")
    if "Reason" in entry:
        failed = "TaskFailed" if isinstance(event, h.TaskFailedEvent) else "SubOrchestrationInstanceFailed"
        entry.update(_failure(failed, source["Name"], event.failure_details))
    out[origin["index"]] = None


def _entry(event: h.HistoryEvent, stamp: str, show_output: bool) -> dict[str, Any] | None:
    base: dict[str, Any] = {"EventType": type(event).__name__.removesuffix("Event"), "Timestamp": stamp}
    result = _result_of(event)
    if result is not _NO_RESULT and show_output:
        base["Result"] = _parsed(result)
    if isinstance(event, h.ExecutionStartedEvent):
        return base | {"FunctionName": event.name, "Input": event.input}
    if isinstance(event, h.ExecutionCompletedEvent):
        base["OrchestrationStatus"] = _STATUS_NAMES.get(
            int(event.orchestration_status), str(event.orchestration_status)
        )
        if show_output and event.failure_details is not None and event.result is None:
            base["Result"] = event.failure_details.message
        return base
    if isinstance(event, h.TaskScheduledEvent | h.EventRaisedEvent):
        return base | {"Name": event.name, "Input": event.input}
    if isinstance(event, h.SubOrchestrationInstanceCreatedEvent | h.EventSentEvent):
        return base | {"Name": event.name, "InstanceId": event.instance_id, "Input": event.input}
    if isinstance(event, h.TaskFailedEvent | h.SubOrchestrationInstanceFailedEvent):
        message = event.failure_details.message if event.failure_details else ""
        return base | {"Reason": message, "Details": None}
    if isinstance(event, h.TimerCreatedEvent | h.TimerFiredEvent):
        return base | {"FireAt": iso(event.fire_at)}
    if isinstance(event, h.ExecutionTerminatedEvent):
        return base | {"Input": event.input}
    if isinstance(event, h.ExecutionSuspendedEvent | h.ExecutionResumedEvent):
        return base | {"Reason": event.input}
    if isinstance(event, h.TaskCompletedEvent | h.SubOrchestrationInstanceCompletedEvent | h.ContinueAsNewEvent):
        return base
    return None  # entity and rewind bookkeeping: not part of a Durable Functions 1.x history


_NO_RESULT = object()


def _result_of(event: h.HistoryEvent) -> Any:
    if isinstance(event, h.TaskCompletedEvent | h.SubOrchestrationInstanceCompletedEvent | h.ExecutionCompletedEvent):
        return event.result
    if isinstance(event, h.ContinueAsNewEvent):
        return event.input
    return _NO_RESULT


__all__ = ["history_events", "iso"]
