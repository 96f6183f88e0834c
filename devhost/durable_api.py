"""The Durable Functions HTTP API (`/runtime/webhooks/durabletask/...`) served over the durabletask engine.

The real `DurableOrchestrationClient` talks to these endpoints (at `rpcBaseUrl`), and the check-status URLs
handed to callers point at them, as on the Functions host. Codes and bodies follow the Durable extension's
`HttpApiHandler` and `DurableClient` (azure-functions-durable-extension 2.13): what devhost answers differently,
and why, is listed in devhost/DURABLE.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import grpc
from durabletask import client as dtc

from devhost import jsonbody
from devhost.durabletask_internals import pb
from devhost.history_view import history_events, iso

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"

_STATUS_NAMES = {
    dtc.OrchestrationStatus.PENDING: "Pending",
    dtc.OrchestrationStatus.RUNNING: "Running",
    dtc.OrchestrationStatus.COMPLETED: "Completed",
    dtc.OrchestrationStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    dtc.OrchestrationStatus.FAILED: "Failed",
    dtc.OrchestrationStatus.TERMINATED: "Terminated",
    dtc.OrchestrationStatus.SUSPENDED: "Suspended",
}
_BY_NAME = {v.lower(): k for k, v in _STATUS_NAMES.items()}
TERMINAL = {
    dtc.OrchestrationStatus.COMPLETED,
    dtc.OrchestrationStatus.FAILED,
    dtc.OrchestrationStatus.TERMINATED,
}
SUSPENDABLE = {
    dtc.OrchestrationStatus.RUNNING,
    dtc.OrchestrationStatus.PENDING,
    dtc.OrchestrationStatus.CONTINUED_AS_NEW,
}
# Like the extension's default (overridableExistingInstanceStates = NonRunningStates): an id whose instance ended
# may be started again; a pending, running or suspended one may not.
_REPLACEABLE = pb.OrchestrationIdReusePolicy(
    replaceableStatus=[
        pb.ORCHESTRATION_STATUS_COMPLETED,
        pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED,
    ]
)
# What the extension answers when a client operation throws (HttpApiHandler.HandleRequestAsync's catch-alls).
SOMETHING_WENT_WRONG = "Something went wrong while processing your request"
ARGUMENTS_INCORRECT = "One or more of the arguments submitted is incorrect"


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


def _error(status: int, message: str, exception: str | None = None, exception_type: str | None = None) -> ApiResponse:
    """The extension's error body (HttpRequestMessageExtensions.CreateErrorResponse), without a .NET stack."""
    body: dict[str, Any] = {"Message": message}
    if exception is not None:
        body |= {"ExceptionMessage": exception, "ExceptionType": exception_type or "System.Exception"}
    return ApiResponse(status, body)


class Query:
    """Query parameters as the extension reads them: names case-insensitive, repeated values joined by commas."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        values: dict[str, list[str]] = {}
        for name, value in pairs:
            values.setdefault(name.lower(), []).append(value.strip())
        self._values = {name: ",".join(items) for name, items in values.items()}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)

    def flag(self, name: str, default: bool) -> bool:
        """bool.TryParse: `true`/`false` in any case; anything else leaves the default."""
        value = (self.get(name) or "").lower()
        return {"true": True, "false": False}.get(value, default)

    def seconds(self, name: str) -> float | None:
        """double.TryParse of a number of seconds; None when absent or not a number."""
        try:
            value = float(self.get(name) or "")
        except ValueError:
            return None
        return value if math.isfinite(value) else None


def decode_client_json(body: bytes, root: str = "input") -> Any:
    """An orchestration input as the extension reads it.

    `DurableOrchestrationClient` serializes inputs itself and then posts that text as a JSON string (double
    encoding); the input the orchestrator's `get_input()` decodes is the inner text. A body that is plain JSON
    (curl) is taken as it is. Number extremes (integers past Python's digit limit, NaN, 1e400) raise
    JsonNumberError naming the field.
    """
    if not body.strip():
        return None
    value = jsonbody.loads(body, root=root)
    if isinstance(value, str):
        try:
            return jsonbody.loads(value, root=root)
        except json.JSONDecodeError:
            return value
    return value


def _loads(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def is_json_media_type(content_type: str | None) -> bool:
    """What HandleRaiseEventRequestAsync accepts: the media type `application/json`, in any case, any parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


class DurableApi:
    """Management operations of the Durable HTTP API, mapped onto a durabletask gRPC client."""

    def __init__(
        self,
        client: dtc.TaskHubGrpcClient,
        hub_name: str,
        orchestrators: set[str],
        key: str,
        default_version: str | None = None,
    ):
        self.client = client
        self.hub_name = hub_name
        self.orchestrators = {name.lower(): name for name in orchestrators}  # registered names
        self.key = key  # the durabletask_extension system key: status URLs carry it, as Azure's do
        self.default_version = default_version  # host.json extensions.durableTask.defaultVersion
        # Instances each function invocation started (its client binding's rpcBaseUrl names the invocation):
        # the blob relay holds an event until the work it started is done (devhost/relay.py).
        self._started: dict[str, list[str]] = {}

    # --- URLs ------------------------------------------------------------------------------------------
    def management_urls(self, origin: str, instance_id: str) -> dict[str, str]:
        base = f"{origin}{WEBHOOK_PREFIX}/instances/{quote(instance_id, safe='')}"
        common = f"taskHub={quote(self.hub_name)}&connection=Storage&code={quote(self.key)}"
        return {
            "id": instance_id,
            "purgeHistoryDeleteUri": f"{base}?{common}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{common}",
            "statusQueryGetUri": f"{base}?{common}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{common}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{common}",
            "restartPostUri": f"{base}/restart?{common}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{common}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{common}",
        }

    def check_status(self, origin: str, instance_id: str) -> ApiResponse:
        """The 202 the extension answers a start with (CreateCheckStatusResponseMessage)."""
        urls = self.management_urls(origin, instance_id)
        body = {k: urls[k] for k in ("id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri")}
        body |= {k: urls[k] for k in ("purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri")}
        return ApiResponse(202, body, {"Location": urls["statusQueryGetUri"], "Retry-After": "10"})

    def client_binding(self, origin: str, rpc_base_url: str) -> str:
        """The `durableClient` binding data the host passes to a function (a JSON string)."""
        placeholder = "INSTANCEID"
        urls = self.management_urls(origin, placeholder)
        creation = f"{origin}{WEBHOOK_PREFIX}/orchestrators/{{functionName}}[/{{instanceId}}]?code={quote(self.key)}"
        return json.dumps(
            {
                "taskHubName": self.hub_name,
                "creationUrls": {
                    "createNewInstancePostUri": creation,
                    "createAndWaitOnNewInstancePostUri": creation + "&timeout={timeoutInSeconds}"
                    "&pollingInterval={intervalInSeconds}",
                },
                "managementUrls": urls,
                "baseUrl": f"{origin}{WEBHOOK_PREFIX}",
                "requiredQueryStringParameters": f"code={quote(self.key)}",
                "rpcBaseUrl": rpc_base_url,
                "httpBaseUrl": "",
                "maxGrpcMessageSizeInBytes": 0,
                "grpcHttpClientTimeout": "00:01:40",
            }
        )

    def started_by(self, invocation_id: str) -> list[str]:
        """The instances an invocation started, forgotten once read."""
        return self._started.pop(invocation_id, [])

    # --- start -----------------------------------------------------------------------------------------
    def start(
        self,
        origin: str,
        name: str,
        instance_id: str | None,
        body: bytes,
        traceparent: str | None = None,
        version: str | None = None,
        invocation_id: str | None = None,
    ) -> ApiResponse:
        registered = self.orchestrators.get(name.lower())
        if registered is None:
            known = ", ".join(sorted(self.orchestrators.values())) or "none"
            message = f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
            return _error(400, ARGUMENTS_INCORRECT, message + f"Orchestrators: {known}", "System.ArgumentException")
        try:
            orchestration_input = decode_client_json(body)
        except jsonbody.JsonNumberError as err:
            return _error(400, "Invalid JSON content", f"the orchestration input is refused: {err}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return _error(400, "Invalid JSON content", f"the orchestration input is not valid JSON: {err}")
        except RecursionError:
            return _error(400, "Invalid JSON content", "the orchestration input is nested too deeply")
        instance_id = instance_id or None
        try:
            # The engine refuses an id whose instance is pending, running or suspended (_REPLACEABLE): one
            # atomic call instead of a status check followed by a start.
            # `?version=` (df's start_new(version=...)) wins, even empty; else host.json's defaultVersion.
            chosen = version if version is not None else self.default_version
            new_id = self._schedule(registered, orchestration_input, instance_id, traceparent, chosen)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            existing = self.client.get_orchestration_state(str(instance_id), fetch_payloads=False)
            status = _STATUS_NAMES.get(existing.runtime_status, "live") if existing else "live"
            message = f"An orchestration with instance ID '{instance_id}' already exists and is {status}."
            return ApiResponse(409, {"ExceptionMessage": message})
        log.info("started %s instance %s", registered, new_id)
        if invocation_id:
            self._started.setdefault(invocation_id, []).append(new_id)
        return self.check_status(origin, new_id)

    def _schedule(
        self,
        name: str,
        orchestration_input: Any,
        instance_id: str | None,
        traceparent: str | None,
        version: str | None = None,
    ) -> str:
        if traceparent:
            # Make the caller's trace the parent of the orchestration, as the extension does with the
            # traceparent header the client sends.
            from opentelemetry import context as otel_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            token = otel_context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
            try:
                return self.client.schedule_new_orchestration(
                    name,
                    input=orchestration_input,
                    instance_id=instance_id,
                    reuse_id_policy=_REPLACEABLE,
                    version=version,
                )
            finally:
                otel_context.detach(token)
        return self.client.schedule_new_orchestration(
            name, input=orchestration_input, instance_id=instance_id, reuse_id_policy=_REPLACEABLE, version=version
        )

    @staticmethod
    def wait_plan(query: Query) -> tuple[float, float] | ApiResponse | None:
        """`timeout` and `pollingInterval` (seconds) of a create-and-wait start; None when either is missing.

        The extension waits only when both are numbers, and refuses an interval longer than the timeout
        (WaitForCompletionOrCreateCheckStatusResponseAsync: ArgumentException, 400) after it started the instance.
        """
        timeout, interval = query.seconds("timeout"), query.seconds("pollingInterval")
        if timeout is None or interval is None:
            return None
        if interval > timeout:
            message = f"Total timeout {timeout:g} should be bigger than retry timeout {interval:g}"
            return _error(400, ARGUMENTS_INCORRECT, message, "System.ArgumentException")
        return max(timeout, 0.0), max(interval, 0.0)

    async def wait_for_completion(
        self, origin: str, instance_id: str, timeout: float, interval: float, query: Query
    ) -> ApiResponse:
        """Polls as the extension does with Azure Storage: 200 with the output once Completed, the status of a
        Failed/Terminated instance (200), or the check-status 202 when `timeout` runs out."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        state = None
        while True:
            state = await loop.run_in_executor(None, self._state, instance_id)
            if state is not None and state.runtime_status in TERMINAL:
                break
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                break
            await asyncio.sleep(min(interval, timeout - elapsed) or 0.01)
        if state is not None and state.runtime_status == dtc.OrchestrationStatus.COMPLETED:
            return ApiResponse(200, _loads(state.serialized_output))
        if state is not None and state.runtime_status in TERMINAL:
            # The extension answers these with the status, and ignores returnInternalServerErrorOnFailure here.
            return await loop.run_in_executor(None, self._status_of, state, query, origin, False)
        return self.check_status(origin, instance_id)

    # --- status ----------------------------------------------------------------------------------------
    def _state(self, instance_id: str) -> dtc.OrchestrationState | None:
        return self.client.get_orchestration_state(instance_id, fetch_payloads=True)

    def status_body(self, state: dtc.OrchestrationState, show_input: bool) -> dict[str, Any]:
        output: Any = _loads(state.serialized_output)
        if state.runtime_status == dtc.OrchestrationStatus.FAILED and state.failure_details is not None:
            details = state.failure_details
            output = f"Orchestrator function '{state.name}' failed: {details.message}"
        return {
            "name": state.name,
            "instanceId": state.instance_id,
            "runtimeStatus": _STATUS_NAMES.get(state.runtime_status, str(state.runtime_status)),
            "input": _loads(state.serialized_input) if show_input else None,
            "customStatus": _loads(state.serialized_custom_status),
            "output": output,
            "createdTime": iso(state.created_at),
            "lastUpdatedTime": iso(state.last_updated_at),
        }

    def status(self, request_url: str, instance_id: str, query: Query) -> ApiResponse:
        """GET /instances/{id}: 202 while it runs, 200 once ended (500 for Failed with
        `returnInternalServerErrorOnFailure=true`), 404 unknown."""
        state = self._state(instance_id)
        if state is None:
            return ApiResponse(404)
        fail_500 = query.flag("returnInternalServerErrorOnFailure", False)
        return self._status_of(state, query, request_url, fail_500)

    def _status_of(self, state: dtc.OrchestrationState, query: Query, request_url: str, fail_500: bool) -> ApiResponse:
        show_input = query.flag("showInput", True)
        body = self.status_body(state, show_input)
        if query.flag("showHistory", False) and state.runtime_status != dtc.OrchestrationStatus.PENDING:
            body["historyEvents"] = history_events(
                self.client.get_orchestration_history(state.instance_id),
                created=state.created_at,
                last_updated=state.last_updated_at,
                show_input=show_input,
                show_output=query.flag("showHistoryOutput", False),
            )
        if state.runtime_status == dtc.OrchestrationStatus.FAILED:
            return ApiResponse(500 if fail_500 else 200, body)
        if state.runtime_status in TERMINAL:
            return ApiResponse(200, body)
        # Running, Pending, Suspended: 202 pointing back at the URL asked, retry in 5 s (HandleGetStatusRequestAsync).
        return ApiResponse(202, body, {"Location": request_url, "Retry-After": "5"})

    def list(self, query: Query) -> ApiResponse:
        try:
            statuses = _runtime_statuses(query)
            created_from = _parse_time(query.get("createdTimeFrom"), "createdTimeFrom")
            created_to = _parse_time(query.get("createdTimeTo"), "createdTimeTo")
            top = _parse_top(query.get("top"))
        except ValueError as err:
            return ApiResponse(400, {"error": str(err)})
        states = self.client.get_all_orchestration_states(
            dtc.OrchestrationQuery(
                created_time_from=created_from,
                created_time_to=created_to,
                runtime_status=statuses or None,
                # Output and custom status are always answered; showInput adds only the input.
                fetch_inputs_and_outputs=True,
                instance_id_prefix=query.get("instanceIdPrefix") or None,
            )
        )
        prefix = query.get("instanceIdPrefix")
        if prefix:
            states = [s for s in states if s.instance_id.startswith(prefix)]
        states.sort(key=lambda s: s.created_at)
        if top is not None:
            states = states[:top]
        show_input = query.flag("showInput", False)
        return ApiResponse(200, [self.status_body(s, show_input) for s in states])

    # --- operations on one instance --------------------------------------------------------------------
    def _lookup(self, instance_id: str, gone: set[dtc.OrchestrationStatus]) -> dtc.OrchestrationState | ApiResponse:
        """The instance, or the extension's 404 (unknown) / 410 (in one of `gone`), both without a body."""
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=False)
        if state is None:
            return ApiResponse(404)
        if state.runtime_status in gone:
            return ApiResponse(410)
        return state

    def terminate(self, instance_id: str, query: Query) -> ApiResponse:
        state = self._lookup(instance_id, TERMINAL)
        if isinstance(state, ApiResponse):
            return state
        self.client.terminate_orchestration(instance_id, output=query.get("reason") or None)
        return ApiResponse(202)

    def suspend(self, instance_id: str, query: Query) -> ApiResponse:
        state = self._lookup(instance_id, TERMINAL)
        if isinstance(state, ApiResponse):
            return state
        if state.runtime_status not in SUSPENDABLE:
            return self._cannot("suspend", instance_id, state)
        self.client.suspend_orchestration(instance_id, reason=query.get("reason") or None)
        return ApiResponse(202)

    def resume(self, instance_id: str, query: Query) -> ApiResponse:
        state = self._lookup(instance_id, TERMINAL)
        if isinstance(state, ApiResponse):
            return state
        if state.runtime_status != dtc.OrchestrationStatus.SUSPENDED:
            return self._cannot("resume", instance_id, state)
        self.client.resume_orchestration(instance_id, reason=query.get("reason") or None)
        return ApiResponse(202)

    @staticmethod
    def _cannot(verb: str, instance_id: str, state: dtc.OrchestrationState) -> ApiResponse:
        # DurableClient.SuspendAsync/ResumeAsync throw; HandleRequestAsync's catch-all answers 500.
        status = _STATUS_NAMES.get(state.runtime_status, str(state.runtime_status))
        message = f"Cannot {verb} the orchestration instance {instance_id} because instance is in the {status} state."
        return _error(500, SOMETHING_WENT_WRONG, message, "System.InvalidOperationException")

    def rewind(self, instance_id: str, query: Query) -> ApiResponse:
        state = self._lookup(instance_id, {dtc.OrchestrationStatus.COMPLETED, dtc.OrchestrationStatus.TERMINATED})
        if isinstance(state, ApiResponse):
            return state
        if state.runtime_status != dtc.OrchestrationStatus.FAILED:
            message = "The rewind operation is only supported on failed orchestration instances."
            return _error(500, SOMETHING_WENT_WRONG, message, "System.InvalidOperationException")
        self.client.rewind_orchestration(instance_id, reason=query.get("reason") or None)
        log.info("rewound %s instance %s", state.name, instance_id)
        return ApiResponse(202)

    def restart(self, origin: str, instance_id: str, query: Query) -> ApiResponse:
        """Starts the instance's orchestrator again with its input: a new id unless `restartWithNewInstanceId=false`
        (DurableClient.RestartAsync: a new instance through StartNewAsync, whatever state the old one is in)."""
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=True)
        if state is None:
            message = f"An orchestrastion with the instanceId {instance_id} was not found."
            return _error(
                400, "InstanceId does not match a valid orchestration instance.", message, "System.ArgumentException"
            )
        new_id = None if query.flag("restartWithNewInstanceId", True) else instance_id
        try:
            # RestartAsync goes through StartNewAsync: the default version, not the old instance's.
            started = self.client.schedule_new_orchestration(
                state.name,
                input=_loads(state.serialized_input),
                instance_id=new_id,
                reuse_id_policy=_REPLACEABLE,
                version=self.default_version,
            )
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            status = _STATUS_NAMES.get(state.runtime_status, str(state.runtime_status))
            message = f"An Orchestration instance with the status {status} already exists."
            return _error(
                500, SOMETHING_WENT_WRONG, message, "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException"
            )
        log.info("restarted %s instance %s as %s", state.name, instance_id, started)
        return self.check_status(origin, started)

    def raise_event(self, instance_id: str, event_name: str, body: bytes, content_type: str | None) -> ApiResponse:
        """POST /instances/{id}/raiseEvent/{name}: the body is one JSON token, sent only as application/json."""
        if not is_json_media_type(content_type):
            return _error(400, "Only application/json request content is supported")
        try:
            data = jsonbody.loads(body, root="data")
        except jsonbody.JsonNumberError as err:
            return _error(400, "Invalid JSON content", f"the event data is refused: {err}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return _error(400, "Invalid JSON content", f"the event data is not valid JSON: {err}")
        except RecursionError:
            return _error(400, "Invalid JSON content", "the event data is nested too deeply")
        state = self._lookup(instance_id, TERMINAL)
        if isinstance(state, ApiResponse):
            return state
        self.client.raise_orchestration_event(instance_id, event_name, data=data)
        return ApiResponse(202)

    # --- purge -----------------------------------------------------------------------------------------
    def purge(self, instance_id: str) -> ApiResponse:
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=False)
        if state is None:
            return ApiResponse(404)
        if state.runtime_status not in TERMINAL:
            return ApiResponse(
                412,
                {
                    "error": f"instance {instance_id!r} is "
                    f"{_STATUS_NAMES[state.runtime_status]}; only ended instances can be purged"
                },
            )
        result = self.client.purge_orchestration(instance_id)
        return ApiResponse(200, {"instancesDeleted": int(getattr(result, "deleted_instance_count", 1))})

    def purge_by_filter(self, query: Query) -> ApiResponse:
        """DELETE /instances?createdTimeFrom=...[&createdTimeTo=...][&runtimeStatus=...]: 200 with the count, 404 when
        nothing matched (HandleDeleteHistoryWithFiltersRequestAsync). Only ended instances are purged."""
        try:
            created_from = _parse_time(query.get("createdTimeFrom"), "createdTimeFrom")
        except ValueError:
            created_from = None
        if created_from is None:
            return ApiResponse(400, "Please provide value for 'createdTimeFrom' parameter.")
        try:
            created_to = _parse_time(query.get("createdTimeTo"), "createdTimeTo") or datetime.now(UTC)
            statuses = _runtime_statuses(query)
        except ValueError as err:
            return ApiResponse(400, {"error": str(err)})
        result = self.client.purge_orchestrations_by(
            created_time_from=created_from, created_time_to=created_to, runtime_status=statuses or None
        )
        deleted = int(result.deleted_instance_count)
        if deleted == 0:
            return ApiResponse(404)
        log.info("purged %d instance(s) created from %s to %s", deleted, iso(created_from), iso(created_to))
        return ApiResponse(200, {"instancesDeleted": deleted})


def _runtime_statuses(query: Query) -> list[dtc.OrchestrationStatus]:
    statuses = []
    for item in filter(None, (query.get("runtimeStatus") or "").split(",")):
        status = _BY_NAME.get(item.strip().lower())
        if status is None:
            raise ValueError(f"runtimeStatus {item!r} is not one of {', '.join(_STATUS_NAMES.values())}")
        statuses.append(status)
    return statuses


def _parse_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: expected an ISO 8601 time such as 2026-11-26T10:00:00Z, got {text[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_top(text: str | None) -> int | None:
    if not text:
        return None
    # int() of a very long digit string raises a ValueError naming sys.set_int_max_str_digits: say what we want.
    if not text.strip().isdigit() or len(text.strip()) > 9:
        raise ValueError(f"top: expected a whole number of at most 9 digits, got {text[:24]!r}")
    return int(text)


def query_of(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Query:
    return Query(pairs.items() if isinstance(pairs, Mapping) else pairs)


__all__ = ["TERMINAL", "WEBHOOK_PREFIX", "ApiResponse", "DurableApi", "Query", "decode_client_json", "query_of"]
