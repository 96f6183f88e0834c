"""Steps an orchestrator through azure-functions-durable's own replay with scripted task results, no engine.

`OrchestrationReplay` keeps the history the Durable extension would keep (DTFx events in the extension's JSON),
runs df's handle for each episode (via devhost.durable_adapter, the same bridge devhost runs) and hands back
the tasks the orchestrator scheduled, so a test can complete or fail them in any order:

    run = OrchestrationReplay(handle, {"workspaces": ["ws"]})
    [listing] = run.step()
    run.complete(listing, {"instances": []})
    run.step()
    assert run.output == {...}

`run_to_end(respond)` answers every activity with `respond(name, input)` (raise `ActivityError` to fail it) and
fires every timer, for the happy paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import durable_adapter as bridge

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


class ActivityError(Exception):
    """Raised by a `respond` callable: the activity fails with this type name and message."""

    def __init__(self, message: str, error_type: str = "Exception"):
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Scheduled:
    """One task the orchestrator scheduled: an activity, a timer or a sub-orchestration."""

    id: int
    kind: str  # "activity" | "timer" | "suborchestration"
    name: str
    input: Any
    fire_at: datetime | None = None
    instance_id: str | None = None


class OrchestrationReplay:
    def __init__(
        self,
        handle: Callable[..., Any],
        orchestration_input: Any = None,
        *,
        instance_id: str = "test-instance",
        parent_instance_id: str | None = None,
        start: datetime = START,
    ):
        self.handle = handle
        self.instance_id = instance_id
        self.parent_instance_id = parent_instance_id
        self.now = start
        self.input = json.dumps(orchestration_input) if orchestration_input is not None else None
        self.past: list[dict[str, Any]] = []
        self.new: list[dict[str, Any]] = [
            self._event(bridge.EXECUTION_STARTED, Name="orchestrator", Version="", Input=self.input)
        ]
        self.tasks: dict[int, Scheduled] = {}
        self.state: dict[str, Any] = {}
        self.failure: str | None = None
        self.custom_status: Any = None
        self.episodes = 0
        self.children: list[OrchestrationReplay] = []  # the sub-orchestrations run_to_end ran

    # --- history -----------------------------------------------------------------------------------
    def _event(self, kind: int, event_id: int = -1, **fields: Any) -> dict[str, Any]:
        stamp = self.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": stamp, **fields}

    def complete(self, task: Scheduled, result: Any) -> None:
        kind = bridge.SUB_COMPLETED if task.kind == "suborchestration" else bridge.TASK_COMPLETED
        self.new.append(self._event(kind, TaskScheduledId=task.id, Result=json.dumps(result)))

    def fail(self, task: Scheduled, message: str, error_type: str = "Exception") -> None:
        """The activity raised `error_type(message)`: Reason and Details as the extension writes them."""
        from devhost.durabletask_internals import pb

        details = pb.TaskFailureDetails(errorType=error_type, errorMessage=message)
        if task.kind == "suborchestration":
            reason, text = bridge.sub_orchestration_failure(task.name, details)
            self.new.append(self._event(bridge.SUB_FAILED, TaskScheduledId=task.id, Reason=reason, Details=text))
        else:
            reason, text = bridge.activity_failure(task.name, details)
            self.new.append(self._event(bridge.TASK_FAILED, TaskScheduledId=task.id, Reason=reason, Details=text))

    def fire(self, timer: Scheduled) -> None:
        assert timer.fire_at is not None
        self.now = max(self.now, timer.fire_at)
        fire_at = timer.fire_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.new.append(self._event(bridge.TIMER_FIRED, TimerId=timer.id, FireAt=fire_at))

    def raise_event(self, name: str, data: Any) -> None:
        self.new.append(self._event(bridge.EVENT_RAISED, Name=name, Input=json.dumps(data)))

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # --- sizes ---------------------------------------------------------------------------------------------
    def history_bytes(self) -> int:
        """Bytes of the history as the extension keeps it (JSON): what every episode replays."""
        return len(json.dumps([*self.past, *self.new]).encode())

    def largest_message_bytes(self) -> int:
        """The largest single message: the input, an event's payload (a task's input or result) or the output."""
        payloads = [self.input or "", json.dumps(self.state.get("output"))]
        payloads += [str(e.get(key) or "") for e in [*self.past, *self.new] for key in ("Input", "Result")]
        return max(len(p.encode()) for p in payloads)

    def tree(self) -> list[OrchestrationReplay]:
        """This orchestration and every sub-orchestration below it."""
        return [self, *(r for child in self.children for r in child.tree())]

    # --- episodes ------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.failure is not None or bool(self.state.get("isDone"))

    @property
    def output(self) -> Any:
        assert self.failure is None, f"the orchestration failed: {self.failure}"
        assert self.state.get("isDone"), "the orchestration has not finished"
        return self.state.get("output")

    def step(self) -> list[Scheduled]:
        """One episode: df replays the whole history plus the new events; returns the tasks it scheduled."""
        assert not self.done, "the orchestration already ended"
        started = self._event(bridge.ORCHESTRATOR_STARTED)
        history = [*self.past, started, *self.new]
        body = json.dumps(
            {
                "history": history,
                "input": self.input,
                "instanceId": self.instance_id,
                "isReplaying": bool(self.past),
                "parentInstanceId": self.parent_instance_id,
                "upperSchemaVersion": bridge.UPPER_SCHEMA_VERSION,
                "maximumShortTimerDuration": bridge.MAXIMUM_SHORT_TIMER_DURATION,
                "longRunningTimerIntervalDuration": bridge.LONG_RUNNING_TIMER_INTERVAL,
            }
        )
        episode = bridge.run_episode(self.handle, body)
        self.episodes += 1
        self.state = episode.state
        self.failure = episode.failed
        self.custom_status = episode.state.get("customStatus")
        scheduled: list[Scheduled] = []
        if episode.failed is None:
            for action in bridge.episode_actions(episode, set(self.tasks), self.instance_id, self.now):
                scheduled.append(self._record(action))
        self.past = [{**e, "IsPlayed": True} for e in history]
        for task in scheduled:
            self.past.append(self._scheduled_event(task))
        self.past.append(self._event(bridge.ORCHESTRATOR_COMPLETED))
        self.new = []
        return scheduled

    def _record(self, action: Any) -> Scheduled:
        if action.HasField("scheduleTask"):
            st = action.scheduleTask
            task = Scheduled(action.id, "activity", st.name, _decoded(st.input))
        elif action.HasField("createTimer"):
            fire_at = action.createTimer.fireAt.ToDatetime(tzinfo=UTC)
            task = Scheduled(action.id, "timer", "", None, fire_at=fire_at)
        else:
            so = action.createSubOrchestration
            task = Scheduled(action.id, "suborchestration", so.name, _decoded(so.input), instance_id=so.instanceId)
        self.tasks[task.id] = task
        return task

    def _scheduled_event(self, task: Scheduled) -> dict[str, Any]:
        payload = json.dumps(task.input) if task.input is not None else None
        if task.kind == "activity":
            event = self._event(bridge.TASK_SCHEDULED, task.id, Name=task.name, Version="", Input=payload)
        elif task.kind == "timer":
            assert task.fire_at is not None
            event = self._event(bridge.TIMER_CREATED, task.id, FireAt=task.fire_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        else:
            event = self._event(bridge.SUB_CREATED, task.id, Name=task.name, InstanceId=task.instance_id, Input=payload)
        return {**event, "IsPlayed": True}

    def run_to_end(
        self,
        respond: Callable[[str, Any], Any],
        sub_orchestrators: Mapping[str, Callable[..., Any]] | None = None,
        max_episodes: int = 10_000,
    ) -> OrchestrationReplay:
        """Answers activities with `respond`, fires timers, runs sub-orchestrations with their own replay."""
        pending = self.step()
        while not self.done:
            if self.episodes > max_episodes:
                raise AssertionError(f"no end after {max_episodes} episodes; open tasks {pending}")
            if not pending:
                raise AssertionError(f"the orchestration waits for something no script answers: {self.state}")
            for task in pending:
                self._answer(task, respond, sub_orchestrators or {})
            pending = self.step()
        return self

    def _answer(
        self, task: Scheduled, respond: Callable[[str, Any], Any], subs: Mapping[str, Callable[..., Any]]
    ) -> None:
        if task.kind == "timer":
            self.fire(task)
            return
        if task.kind == "suborchestration":
            child = OrchestrationReplay(
                subs[task.name], task.input, instance_id=task.instance_id or "child", start=self.now
            )
            child.parent_instance_id = self.instance_id
            self.children.append(child)
            child.run_to_end(respond, subs)
            if child.failure is not None:
                self.fail(task, child.failure)
            else:
                self.complete(task, child.output)
            return
        try:
            result = respond(task.name, task.input)
        except ActivityError as err:
            self.fail(task, str(err), err.error_type)
        else:
            self.complete(task, result)


def _decoded(value: Any) -> Any:
    text = value.value if value is not None and value.ByteSize() else None
    return json.loads(text) if text is not None else None
