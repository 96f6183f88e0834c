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
- A sub-orchestration that runs longer than 30 s still reports to its parent (the stock watcher gives up then).
- gRPC messages up to `max_message_bytes` (gRPC's default is 4 MiB); an orchestration whose history no longer fits
  in one message fails saying so, instead of never reaching a worker.
- An episode a worker abandons (an orchestration version this app does not run) is offered again after a delay,
  as an abandoned queue message becomes visible again, not at once in a busy loop.
- Entity batches are leased too: a batch a dying worker held goes to the next worker.

What this needs of durabletask's private state goes through devhost/durabletask_internals.py (version-checked).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc

from devhost.durabletask_internals import ActivityWorkItem, BackendInternals, helpers, pb

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    """One worker's work-item stream and what it holds."""

    capacity: int
    activities: dict[tuple[str, int], ActivityWorkItem] = field(default_factory=dict)
    orchestrations: dict[str, str] = field(default_factory=dict)  # instance id -> completion token
    entities: dict[str, str] = field(default_factory=dict)  # entity instance id -> completion token
    freed: threading.Event = field(default_factory=threading.Event)


# How long an abandoned episode waits before it is offered again.
ABANDON_RETRY_SECONDS = 30.0


class DevhostBackend(BackendInternals):
    def __init__(self, port: int, activity_capacity: int, max_message_bytes: int, max_history_size: int = 10000):
        super().__init__(max_history_size=max_history_size, port=port)
        self.activity_capacity = activity_capacity
        self.max_message_bytes = max_message_bytes
        self.streams: list[_Stream] = []

    def start(self) -> str:
        # A server thread for every worker's stream.
        return self.serve_on_loopback(max_threads=128, max_message_bytes=self.max_message_bytes)

    # --- leases ---------------------------------------------------------------------------------------
    def GetWorkItems(  # noqa: N802 (gRPC servicer method)
        self, request: pb.GetWorkItemsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WorkItem]:
        stream = _Stream(self.activity_capacity)
        with self.lock:
            self.streams.append(stream)
        inner = cast(Generator[pb.WorkItem, None, None], super().GetWorkItems(request, context))
        try:
            for item in inner:
                with self.lock:
                    if item.HasField("orchestratorRequest") and self._too_large(item):
                        continue
                    if item.HasField("entityRequestV2"):
                        stream.entities[item.entityRequestV2.instanceId] = item.completionToken
                    elif item.HasField("activityRequest"):
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
            self.release(stream)

    def _too_large(self, item: pb.WorkItem) -> bool:
        """Fail an orchestration whose episode (its whole history) no longer fits in one gRPC message."""
        size = item.ByteSize()
        if size <= self.max_message_bytes:
            return False
        instance = self.instance(item.orchestratorRequest.instanceId)
        if instance is None:
            return True
        message = (
            f"the history of orchestration {instance.instance_id} is {size} bytes and exceeds devhost's gRPC "
            f"message limit of {self.max_message_bytes} bytes (DEVHOST_GRPC_MAX_MESSAGE_MB): keep large data in "
            "blob storage and pass references, or raise DEVHOST_GRPC_MAX_MESSAGE_MB"
        )
        log.error("%s", message)
        self.fail_orchestration(instance, "MessageTooLarge", message)
        return True

    def release(self, stream: _Stream) -> None:
        with self.lock:
            if stream in self.streams:
                self.streams.remove(stream)
            for entity_id, token in stream.entities.items():
                log.warning("worker lost the operations of entity %s; dispatching them again", entity_id)
                self.abandon_entity_batch(token)
            for work in stream.activities.values():
                if self.instance(work.instance_id) is not None:
                    log.warning("worker lost activity %s of %s; dispatching it again", work.name, work.instance_id)
                    self.requeue_activity(work)
            for instance_id in stream.orchestrations:
                if self.redispatch_orchestration(instance_id):
                    log.warning("worker lost orchestration %s mid-replay; dispatching it again", instance_id)
            self.wake_dispatcher()

    def CompleteActivityTask(  # noqa: N802
        self, request: pb.ActivityResponse, context: grpc.ServicerContext
    ) -> Any:
        key = (request.instanceId, request.taskId)
        with self.lock:
            holder = next((s for s in self.streams if key in s.activities), None)
            if holder is None:
                # Not leased: already completed by an earlier run of the same work item. Drop the duplicate,
                # as a completion that lost its lease is dropped by the real task hub.
                log.info("ignoring a duplicate completion of task %d of %s", request.taskId, request.instanceId)
                return pb.CompleteTaskResponse()
            del holder.activities[key]
            holder.freed.set()
            return super().CompleteActivityTask(request, context)

    def CompleteEntityTask(  # noqa: N802
        self, request: pb.EntityBatchResult, context: grpc.ServicerContext
    ) -> Any:
        with self.lock:
            for stream in self.streams:
                for entity_id, token in list(stream.entities.items()):
                    if token == request.completionToken:
                        del stream.entities[entity_id]
            return super().CompleteEntityTask(request, context)

    def AbandonTaskOrchestratorWorkItem(  # noqa: N802
        self, request: pb.AbandonOrchestrationTaskRequest, context: grpc.ServicerContext
    ) -> pb.AbandonOrchestrationTaskResponse:
        with self.lock:
            for stream in self.streams:
                for instance_id, token in list(stream.orchestrations.items()):
                    if token == request.completionToken:
                        del stream.orchestrations[instance_id]
            self.defer_orchestration(request.completionToken, ABANDON_RETRY_SECONDS)
        return pb.AbandonOrchestrationTaskResponse()

    def CompleteOrchestratorTask(  # noqa: N802
        self, request: pb.OrchestratorResponse, context: grpc.ServicerContext
    ) -> Any:
        with self.lock:
            for stream in self.streams:
                stream.orchestrations.pop(request.instanceId, None)
            instance = self.instance(request.instanceId)
            if (
                instance is not None
                and str(instance.completion_token) == request.completionToken
                and len(instance.history) + len(instance.dispatched_events) + len(request.actions)
                > self.max_history_size
            ):
                self.fail_for_history_size(instance)
                return pb.CompleteTaskResponse()
            return super().CompleteOrchestratorTask(request, context)

    def on_sub_orchestration_created(self, parent: Any, action: pb.OrchestratorAction) -> None:
        child = self.instance(action.createSubOrchestration.instanceId)
        if child is None:
            return
        for event in child.pending_events:
            if event.HasField("executionStarted"):
                event.executionStarted.parentInstance.CopyFrom(
                    pb.ParentInstanceInfo(
                        taskScheduledId=action.id,
                        name=helpers.get_string_value(parent.name),
                        orchestrationInstance=pb.OrchestrationInstance(instanceId=parent.instance_id),
                    )
                )

    def fail_for_history_size(self, instance: Any) -> None:
        message = (
            f"orchestration {instance.instance_id} would exceed the history limit of {self.max_history_size} "
            "events; split large fan-outs into waves or sub-orchestrations"
        )
        log.error("%s", message)
        self.fail_orchestration(instance, "HistorySizeExceeded", message)
