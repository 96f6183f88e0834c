"""Every use devhost makes of durabletask's private parts, behind one version check.

devhost's engine is durabletask's in-memory backend plus leases, per-worker capacity and a history limit
(devhost/engine.py), and its workers are durabletask's worker with df's replay in the orchestrator and entity slots
(devhost/worker.py). Both need more than durabletask's public API: the backend's locked state (`_instances`,
`_activity_queue`, ...), the worker's `_execute_orchestrator` and `_execute_entity_batch`, and the protobuf
messages and helpers of `durabletask.internal`. Those are durabletask's to change in any release, so they are
touched here only (other devhost modules import `pb` and `helpers` from here), and this module refuses to load
under a durabletask it was not written for: an upgrade fails at start with a message saying what to re-check, not
with a hung orchestration later.

It also fixes one bug of the stock backend (1.12.0): a sub-orchestration's completion is delivered to its parent
by a watcher thread that waits with `timeout=None`, which `_wait_for_state` turns into 30 s; a sub-orchestration
running longer than that never reported back and its parent stayed Running forever. The watcher here waits for as
long as the sub-orchestration runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

WRITTEN_FOR = "1.12"  # the durabletask minor version whose private names this module uses


class DurabletaskVersionError(RuntimeError):
    """The installed durabletask is not the version devhost's engine was written against."""


def check_version(installed: str) -> None:
    """Fail with what to do unless `installed` is a WRITTEN_FOR.x release of durabletask."""
    if installed.split(".")[:2] != WRITTEN_FOR.split("."):
        raise DurabletaskVersionError(
            f"devhost needs durabletask {WRITTEN_FOR}.x, but durabletask {installed} is installed: "
            f"devhost/durabletask_internals.py uses private parts of durabletask {WRITTEN_FOR} (its in-memory "
            f"backend's state and the worker's orchestrator hook). Install durabletask=={WRITTEN_FOR}.* "
            "(requirements-dev.txt pins it), or re-check that module against the new version and update WRITTEN_FOR."
        )


def _installed_version() -> str:
    try:
        return version("durabletask")
    except PackageNotFoundError:
        return "(not installed)"


check_version(_installed_version())

import grpc  # noqa: E402 - only once the version is known to fit
from durabletask.grpc_options import GrpcChannelOptions  # noqa: E402
from durabletask.internal import helpers  # noqa: E402
from durabletask.internal import orchestrator_service_pb2 as pb  # noqa: E402
from durabletask.internal import orchestrator_service_pb2_grpc as stubs  # noqa: E402
from durabletask.testing.in_memory_backend import ActivityWorkItem, InMemoryOrchestrationBackend  # noqa: E402
from durabletask.worker import TaskHubGrpcWorker, _OrchestrationExecutor  # noqa: E402

_worker_log = logging.getLogger("devhost.worker")

# How often a sub-orchestration watcher wakes to see whether the backend stopped or the instance was purged.
_WATCH_SLICE_SECONDS = 5.0


def message_options(max_bytes: int) -> list[tuple[str, int]]:
    """gRPC options raising both message limits (default 4 MiB) to `max_bytes`, for servers and channels alike."""
    return [("grpc.max_receive_message_length", max_bytes), ("grpc.max_send_message_length", max_bytes)]


def channel_options(max_bytes: int) -> GrpcChannelOptions:
    """durabletask's channel options for a client or worker whose messages may reach `max_bytes`."""
    return GrpcChannelOptions(max_receive_message_length=max_bytes, max_send_message_length=max_bytes)


class BackendInternals(InMemoryOrchestrationBackend):
    """The stock in-memory backend with named operations on its private state, for devhost/engine.py.

    Callers hold `lock` around every method that reads or changes instances, as the stock backend does.
    """

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def max_history_size(self) -> int:
        return int(self._max_history_size)

    def serve_on_loopback(self, max_threads: int, max_message_bytes: int) -> str:
        """Start the gRPC server on 127.0.0.1 only (the stock one listens on every interface with 10 threads and
        gRPC's 4 MiB message limit)."""
        self._shutdown_event.clear()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="engine"),
            options=message_options(max_message_bytes),
        )
        stubs.add_TaskHubSidecarServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{self._port}")
        server.start()
        self._server = server
        return f"127.0.0.1:{self._port}"

    def instance(self, instance_id: str) -> Any | None:
        return self._instances.get(instance_id)

    def requeue_activity(self, work: ActivityWorkItem) -> None:
        """Hand an activity a worker lost to the next worker that asks (first in line)."""
        self._activity_queue.appendleft(work)

    def redispatch_orchestration(self, instance_id: str) -> bool:
        """Put back an orchestration episode a worker lost mid-replay; False if it was not in flight."""
        instance = self._instances.get(instance_id)
        if instance is None or instance_id not in self._orchestration_in_flight:
            return False
        instance.pending_events = list(instance.dispatched_events) + list(instance.pending_events)
        instance.dispatched_events.clear()
        self._orchestration_in_flight.discard(instance_id)
        self._enqueue_orchestration(instance_id)
        return True

    def wake_dispatcher(self) -> None:
        self._work_available.set()

    def defer_orchestration(self, completion_token: str, delay_seconds: float) -> str | None:
        """Put back an episode a worker abandoned, dispatched again after `delay_seconds` (as an abandoned queue
        message becomes visible again later); the stock backend re-dispatches at once, a busy loop for an episode
        that will be abandoned again. Returns the instance id, or None if no episode in flight had that token."""
        instance = next(
            (
                self._instances[i]
                for i in self._orchestration_in_flight
                if i in self._instances and str(self._instances[i].completion_token) == completion_token
            ),
            None,
        )
        if instance is None:
            return None
        instance.pending_events = list(instance.dispatched_events) + list(instance.pending_events)
        instance.dispatched_events.clear()
        self._orchestration_in_flight.discard(instance.instance_id)
        timer = threading.Timer(delay_seconds, self._requeue, args=(instance.instance_id, self._generation))
        timer.daemon = True
        timer.start()
        return str(instance.instance_id)

    def _requeue(self, instance_id: str, generation: int) -> None:
        with self._lock:
            if self._generation == generation and instance_id in self._instances:
                self._enqueue_orchestration(instance_id)

    def abandon_entity_batch(self, completion_token: str) -> None:
        """Put back an entity batch a worker lost, for the next worker (the stock abandon operation)."""
        self.AbandonTaskEntityWorkItem(pb.AbandonEntityTaskRequest(completionToken=completion_token), None)

    def fail_orchestration(self, instance: Any, error_type: str, message: str) -> None:
        """End an instance as Failed now, as the stock backend does when an orchestrator fails."""
        instance.history.extend(instance.dispatched_events)
        instance.dispatched_events.clear()
        instance.pending_events.clear()
        instance.status = pb.ORCHESTRATION_STATUS_FAILED
        instance.failure_details = pb.TaskFailureDetails(
            errorType=error_type, errorMessage=message, isNonRetriable=True
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

    def on_sub_orchestration_created(self, parent: Any, action: pb.OrchestratorAction) -> None:
        """Called with the lock held after the stock backend created a sub-orchestration; override to amend it."""

    # --- overrides of the stock backend's private methods ----------------------------------------------------
    def _process_create_sub_orchestration_action(self, instance: Any, action: pb.OrchestratorAction) -> None:
        super()._process_create_sub_orchestration_action(instance, action)
        self.on_sub_orchestration_created(instance, action)

    def _watch_sub_orchestration(self, parent_instance_id: str, sub_instance_id: str, task_id: int) -> None:
        # The stock watcher gives up after 30 s (see the module docstring); this one waits in slices until the
        # sub-orchestration ends, the backend stops, or either instance is gone (purged).
        generation = self._generation

        def finished(sub: Any) -> bool:
            return bool(self._is_terminal_status_check(sub))

        def watch() -> None:
            while True:
                sub = self._wait_for_state(sub_instance_id, finished, timeout=_WATCH_SLICE_SECONDS)
                if sub is not None:
                    break
                with self._lock:
                    if (
                        self._shutdown_event.is_set()
                        or self._generation != generation
                        or sub_instance_id not in self._instances
                        or parent_instance_id not in self._instances
                    ):
                        return
            with self._lock:
                self._deliver_sub_orchestration_result(parent_instance_id, sub, task_id)

        threading.Thread(target=watch, name=f"watch-{sub_instance_id}", daemon=True).start()

    def _deliver_sub_orchestration_result(self, parent_instance_id: str, sub: Any, task_id: int) -> None:
        # What the stock watcher does once the sub-orchestration ended (durabletask 1.12.0).
        parent = self._instances.get(parent_instance_id)
        if parent is None or self._is_terminal_status(parent.status):
            return
        if sub.status == pb.ORCHESTRATION_STATUS_COMPLETED:
            event = helpers.new_sub_orchestration_completed_event(task_id, sub.output)
        else:
            message = sub.failure_details.errorMessage if sub.failure_details else "Sub-orchestration failed"
            event = helpers.new_sub_orchestration_failed_event(task_id, Exception(message))
        parent.pending_events.append(event)
        parent.last_updated_at = datetime.now(UTC)
        self._enqueue_orchestration(parent_instance_id)


# One orchestrator episode: the request in, the actions and custom status (JSON text or None) out.
EpisodeRunner = Callable[[pb.OrchestratorRequest], tuple[list[pb.OrchestratorAction], str | None]]
# One entity batch: the batch request and where each operation's response goes, the batch result out.
EntityBatchRunner = Callable[[pb.EntityBatchRequest, list[pb.OperationInfo]], pb.EntityBatchResult]


class EpisodeRejected(Exception):
    """The episode must not run on this worker now (a version it does not accept): hand it back for later."""


def oversize_message(response: pb.OrchestratorResponse, limit: int) -> str:
    """Why an episode's answer cannot go back to the engine: what made it larger than the gRPC message limit."""
    size = response.ByteSize()
    setting = f"devhost's gRPC message limit of {limit} bytes (DEVHOST_GRPC_MAX_MESSAGE_MB)"
    for action in response.actions:
        if action.HasField("completeOrchestration") and action.completeOrchestration.HasField("result"):
            output = len(action.completeOrchestration.result.value.encode())
            if output * 2 > size:
                return (
                    f"output of {output} bytes exceeds {setting}; keep large data in blob storage and return "
                    "a reference to it, or raise DEVHOST_GRPC_MAX_MESSAGE_MB"
                )
    return (
        f"this episode's actions and custom status of {size} bytes exceed {setting}; pass large inputs through "
        "blob storage, or raise DEVHOST_GRPC_MAX_MESSAGE_MB"
    )


def _rewind_action(req: pb.OrchestratorRequest, logger: logging.Logger) -> pb.OrchestratorAction | None:
    """The engine's rewind of a failed instance (POST .../rewind): the history without its failed tasks.

    The engine asks the worker to rewrite the history (an executionRewound event after the executionCompleted);
    durabletask's own executor does that without running the orchestrator (`_build_rewind_result`): the failed
    TaskScheduled/TaskFailed pairs and sub-orchestration failures go, so df's next replay schedules them again,
    as DTFx's rewind does for the extension.
    """
    rewound = any(e.HasField("executionRewound") for e in req.newEvents)
    if not rewound or not any(e.HasField("executionCompleted") for e in req.pastEvents):
        return None
    name = next((e.executionStarted.name for e in req.pastEvents if e.HasField("executionStarted")), "")
    executor = _OrchestrationExecutor.__new__(_OrchestrationExecutor)  # only its history rewrite is used
    executor._logger = logger
    result = executor._build_rewind_result(req.instanceId, name, list(req.pastEvents), list(req.newEvents))
    action: pb.OrchestratorAction = result.actions[0]
    return action


class EpisodeWorker(TaskHubGrpcWorker):
    """durabletask's worker with orchestrator episodes run by `run_episode` and entity batches by `run_entity`
    instead of its own executors.

    An answer larger than the gRPC message limit would be refused by the engine and leave the instance Running
    forever: the worker fails the instance instead, saying what was too large.
    """

    def __init__(
        self,
        run_episode: EpisodeRunner,
        run_entity: EntityBatchRunner,
        max_message_bytes: int,
        **kwargs: Any,
    ):
        super().__init__(channel_options=channel_options(max_message_bytes), **kwargs)
        self._devhost_run_episode = run_episode
        self._devhost_run_entity = run_entity
        self._devhost_max_message = max_message_bytes

    def _execute_orchestrator(self, req: pb.OrchestratorRequest, stub: Any, completionToken: Any) -> None:  # noqa: N803
        try:
            rewind = _rewind_action(req, _worker_log)
            actions, custom_status = ([rewind], None) if rewind else self._devhost_run_episode(req)
        except EpisodeRejected as rejected:
            _worker_log.warning("%s: %s; the work item is abandoned and retried later", req.instanceId, rejected)
            stub.AbandonTaskOrchestratorWorkItem(pb.AbandonOrchestrationTaskRequest(completionToken=completionToken))
            return
        except Exception as err:
            # What the extension does when the worker cannot run the orchestrator: fail the instance, saying why.
            _worker_log.exception("orchestrator episode of %s failed", req.instanceId)
            actions = [_failure_action(type(err).__name__, f"{type(err).__name__}: {err}")]
            custom_status = None
        response = pb.OrchestratorResponse(
            instanceId=req.instanceId,
            actions=actions,
            customStatus=helpers.get_string_value(custom_status),
            completionToken=completionToken,
        )
        if response.ByteSize() > self._devhost_max_message:
            message = oversize_message(response, self._devhost_max_message)
            _worker_log.error("%s: %s", req.instanceId, message)
            response = pb.OrchestratorResponse(
                instanceId=req.instanceId,
                actions=[_failure_action("MessageTooLarge", message)],
                completionToken=completionToken,
            )
        try:
            stub.CompleteOrchestratorTask(response)
        except Exception:
            _worker_log.exception("could not hand the episode of %s back to the engine", req.instanceId)

    def _execute_entity_batch(
        self,
        req: pb.EntityBatchRequest | pb.EntityRequest,
        stub: Any,
        completionToken: Any,  # noqa: N803
    ) -> pb.EntityBatchResult:
        infos: list[pb.OperationInfo] = []
        if isinstance(req, pb.EntityRequest):
            req, infos = helpers.convert_to_entity_batch_request(req)
        result = self._devhost_run_entity(req, infos)
        result.completionToken = completionToken
        try:
            stub.CompleteEntityTask(result)
        except Exception:
            _worker_log.exception("could not hand the entity batch of %s back to the engine", req.instanceId)
        return result


def _failure_action(error_type: str, message: str) -> pb.OrchestratorAction:
    details = pb.TaskFailureDetails(errorType=error_type, errorMessage=message)
    return helpers.new_complete_orchestration_action(-1, pb.ORCHESTRATION_STATUS_FAILED, None, details)


__all__ = [
    "WRITTEN_FOR",
    "ActivityWorkItem",
    "BackendInternals",
    "DurabletaskVersionError",
    "EntityBatchRunner",
    "EpisodeRejected",
    "EpisodeRunner",
    "EpisodeWorker",
    "channel_options",
    "check_version",
    "helpers",
    "message_options",
    "pb",
]
