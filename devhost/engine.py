"""devhost's Durable Task engine: durabletask's in-memory backend plus what a real task hub gives the app.

- Leases: work handed to a worker process that dies before completing it is dispatched again (the Azure Storage
  backend does this when a queue message's visibility timeout expires), so activities run at least once.
- Per-worker capacity: a worker is handed no more activities than it can run at once, so work spreads over all
  worker processes instead of queuing inside the first one to connect.
- A history that would exceed its size limit fails the orchestration with a clear message; the stock backend
  refuses the completion and leaves the instance Running forever.
- The gRPC port listens on loopback only, with enough server threads for every worker's stream.
- A sub-orchestration's ExecutionStarted names its parent (`parentInstance`), as DTFx records it: df's
  `context.parent_instance_id` reads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import grpc
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.testing.in_memory_backend import ActivityWorkItem, InMemoryOrchestrationBackend

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    """One worker's work-item stream and what it holds."""

    capacity: int
    activities: dict[tuple[str, int], ActivityWorkItem] = field(default_factory=dict)
    orchestrations: dict[str, str] = field(default_factory=dict)  # instance id -> completion token
    freed: threading.Event = field(default_factory=threading.Event)


class DevhostBackend(InMemoryOrchestrationBackend):
    def __init__(self, port: int, activity_capacity: int, max_history_size: int = 10000):
        super().__init__(max_history_size=max_history_size, port=port)
        self._activity_capacity = activity_capacity
        self._streams: list[_Stream] = []

    def start(self) -> str:
        self._shutdown_event.clear()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=128, thread_name_prefix="engine"))
        stubs.add_TaskHubSidecarServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{self._port}")
        server.start()
        self._server = server
        return f"127.0.0.1:{self._port}"

    # --- leases ---------------------------------------------------------------------------------------
    def GetWorkItems(  # noqa: N802 (gRPC servicer method)
        self, request: pb.GetWorkItemsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WorkItem]:
        stream = _Stream(self._activity_capacity)
        with self._lock:
            self._streams.append(stream)
        inner = cast(Generator[pb.WorkItem, None, None], super().GetWorkItems(request, context))
        try:
            for item in inner:
                with self._lock:
                    if item.HasField("activityRequest"):
                        req = item.activityRequest
                        key = (req.orchestrationInstance.instanceId, req.taskId)
                        stream.activities[key] = ActivityWorkItem(
                            instance_id=key[0],
                            name=req.name,
                            task_id=req.taskId,
                            input=req.input.value if req.HasField("input") else None,
                            completion_token=int(item.completionToken),
                        )
                    elif item.HasField("orchestratorRequest"):
                        stream.orchestrations[item.orchestratorRequest.instanceId] = item.completionToken
                yield item
                # Ask the stock dispatcher for more only while this worker has a free activity slot.
                while len(stream.activities) >= stream.capacity and context.is_active():
                    stream.freed.wait(0.1)
                    stream.freed.clear()
        finally:
            inner.close()
            self._release(stream)

    def _release(self, stream: _Stream) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)
            for work in stream.activities.values():
                if work.instance_id in self._instances:
                    log.warning("worker lost activity %s of %s; dispatching it again", work.name, work.instance_id)
                    self._activity_queue.appendleft(work)
            for instance_id in stream.orchestrations:
                instance = self._instances.get(instance_id)
                if instance is None or instance_id not in self._orchestration_in_flight:
                    continue
                log.warning("worker lost orchestration %s mid-replay; dispatching it again", instance_id)
                instance.pending_events = list(instance.dispatched_events) + list(instance.pending_events)
                instance.dispatched_events.clear()
                self._orchestration_in_flight.discard(instance_id)
                self._enqueue_orchestration(instance_id)
            self._work_available.set()

    def CompleteActivityTask(  # noqa: N802
        self, request: pb.ActivityResponse, context: grpc.ServicerContext
    ) -> Any:
        key = (request.instanceId, request.taskId)
        with self._lock:
            holder = next((s for s in self._streams if key in s.activities), None)
            if holder is None:
                # Not leased: already completed by an earlier run of the same work item. Drop the duplicate,
                # as a completion that lost its lease is dropped by the real task hub.
                log.info("ignoring a duplicate completion of task %d of %s", request.taskId, request.instanceId)
                return pb.CompleteTaskResponse()
            del holder.activities[key]
            holder.freed.set()
            return super().CompleteActivityTask(request, context)

    def CompleteOrchestratorTask(  # noqa: N802
        self, request: pb.OrchestratorResponse, context: grpc.ServicerContext
    ) -> Any:
        with self._lock:
            for stream in self._streams:
                stream.orchestrations.pop(request.instanceId, None)
            instance = self._instances.get(request.instanceId)
            if (
                instance is not None
                and str(instance.completion_token) == request.completionToken
                and len(instance.history) + len(instance.dispatched_events) + len(request.actions)
                > self._max_history_size
            ):
                self._fail_for_history_size(instance)
                return pb.CompleteTaskResponse()
            return super().CompleteOrchestratorTask(request, context)

    def _process_create_sub_orchestration_action(self, instance: Any, action: pb.OrchestratorAction) -> None:
        super()._process_create_sub_orchestration_action(instance, action)  # called with the lock held
        child = self._instances.get(action.createSubOrchestration.instanceId)
        if child is None:
            return
        for event in child.pending_events:
            if event.HasField("executionStarted"):
                event.executionStarted.parentInstance.CopyFrom(
                    pb.ParentInstanceInfo(
                        taskScheduledId=action.id,
                        name=helpers.get_string_value(instance.name),
                        orchestrationInstance=pb.OrchestrationInstance(instanceId=instance.instance_id),
                    )
                )

    def _fail_for_history_size(self, instance: Any) -> None:
        message = (
            f"orchestration {instance.instance_id} would exceed the history limit of {self._max_history_size} "
            "events; split large fan-outs into waves or sub-orchestrations"
        )
        log.error("%s", message)
        instance.history.extend(instance.dispatched_events)
        instance.dispatched_events.clear()
        instance.pending_events.clear()
        instance.status = pb.ORCHESTRATION_STATUS_FAILED
        instance.failure_details = pb.TaskFailureDetails(
            errorType="HistorySizeExceeded", errorMessage=message, isNonRetriable=True
        )
        now = datetime.now(UTC)
        instance.last_updated_at = now
        instance.completed_at = now
        instance.history.append(
            helpers.new_execution_completed_event(instance.status, instance.output, instance.failure_details)
        )
        instance.completion_token = self._next_completion_token
        self._next_completion_token += 1
        self._orchestration_in_flight.discard(instance.instance_id)
        self._orchestration_queue_set.discard(instance.instance_id)
        self._notify_waiters(instance.instance_id)
