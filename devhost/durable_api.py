"""The Durable Functions HTTP API (`/runtime/webhooks/durabletask/...`) served over the durabletask engine.

The real `DurableOrchestrationClient` talks to these endpoints (at `rpcBaseUrl`), and the check-status URLs
handed to callers point at them, as on the Functions host.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import grpc
from durabletask import client as dtc
from durabletask.internal import orchestrator_service_pb2 as pb

from devhost import jsonbody

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
# Like the extension's default (overridableExistingInstanceStates = NonRunningStates): an id whose instance ended
# may be started again; a pending, running or suspended one may not.
_REPLACEABLE = pb.OrchestrationIdReusePolicy(
    replaceableStatus=[
        pb.ORCHESTRATION_STATUS_COMPLETED,
        pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED,
    ]
)


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


def decode_client_json(body: bytes, root: str = "input") -> Any:
    """A JSON body as the extension reads it.

    `DurableOrchestrationClient` serializes inputs and event data itself and then posts that text as a JSON
    string (double encoding); the extension hands the inner text to the orchestrator, whose `get_input()`
    decodes it. A body that is plain JSON (curl) is taken as it is.
    Number extremes (integers past Python's digit limit, NaN, 1e400) raise JsonNumberError naming the field.
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


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _loads(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class DurableApi:
    """Management operations of the Durable HTTP API, mapped onto a durabletask gRPC client."""

    def __init__(self, client: dtc.TaskHubGrpcClient, hub_name: str, orchestrators: set[str], key: str):
        self.client = client
        self.hub_name = hub_name
        self.orchestrators = {name.lower(): name for name in orchestrators}
        self.key = key

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

    # --- operations -----------------------------------------------------------------------------------
    def start(
        self, origin: str, name: str, instance_id: str | None, body: bytes, traceparent: str | None = None
    ) -> ApiResponse:
        registered = self.orchestrators.get(name.lower())
        if registered is None:
            known = ", ".join(sorted(self.orchestrators.values())) or "none"
            return ApiResponse(
                400,
                {
                    "ExceptionMessage": f"The function '{name}' doesn't exist, is disabled, "
                    f"or is not an orchestrator function. Orchestrators: {known}"
                },
            )
        try:
            orchestration_input = decode_client_json(body)
        except jsonbody.JsonNumberError as err:
            return ApiResponse(400, {"ExceptionMessage": f"the orchestration input is refused: {err}"})
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return ApiResponse(400, {"ExceptionMessage": f"the orchestration input is not valid JSON: {err}"})
        except RecursionError:
            return ApiResponse(400, {"ExceptionMessage": "the orchestration input is nested too deeply"})
        instance_id = instance_id or None
        try:
            # The engine refuses an id whose instance is pending, running or suspended (_REPLACEABLE): one
            # atomic call instead of a status check followed by a start.
            new_id = self._schedule(registered, orchestration_input, instance_id, traceparent)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            existing = self.client.get_orchestration_state(str(instance_id), fetch_payloads=False)
            status = _STATUS_NAMES.get(existing.runtime_status, "live") if existing else "live"
            message = f"An orchestration with instance ID '{instance_id}' already exists and is {status}."
            return ApiResponse(409, {"ExceptionMessage": message})
        log.info("started %s instance %s", registered, new_id)
        urls = self.management_urls(origin, new_id)
        return ApiResponse(202, urls, {"Location": urls["statusQueryGetUri"], "Retry-After": "10"})

    def _schedule(self, name: str, orchestration_input: Any, instance_id: str | None, traceparent: str | None) -> str:
        if traceparent:
            # Make the caller's trace the parent of the orchestration, as the extension does with the
            # traceparent header the client sends.
            from opentelemetry import context as otel_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            token = otel_context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
            try:
                return self.client.schedule_new_orchestration(
                    name, input=orchestration_input, instance_id=instance_id, reuse_id_policy=_REPLACEABLE
                )
            finally:
                otel_context.detach(token)
        return self.client.schedule_new_orchestration(
            name, input=orchestration_input, instance_id=instance_id, reuse_id_policy=_REPLACEABLE
        )

    def status_body(self, state: dtc.OrchestrationState, show_input: bool) -> dict[str, Any]:
        output: Any = _loads(state.serialized_output)
        if state.runtime_status == dtc.OrchestrationStatus.FAILED and state.failure_details is not None:
            details = state.failure_details
            output = f"Orchestrator function '{state.name}' failed: {details.message}"
        body: dict[str, Any] = {
            "name": state.name,
            "instanceId": state.instance_id,
            "runtimeStatus": _STATUS_NAMES.get(state.runtime_status, str(state.runtime_status)),
            "input": _loads(state.serialized_input) if show_input else None,
            "customStatus": _loads(state.serialized_custom_status),
            "output": output,
            "createdTime": _iso(state.created_at),
            "lastUpdatedTime": _iso(state.last_updated_at),
        }
        return body

    def status(
        self,
        origin: str,
        instance_id: str,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> ApiResponse:
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=True)
        if state is None:
            return ApiResponse(404, {"error": f"no orchestration instance with id {instance_id!r}"})
        body = self.status_body(state, show_input)
        if show_history:
            body["historyEvents"] = self._history_summary(instance_id, show_history_output)
        if state.runtime_status in TERMINAL:
            return ApiResponse(200, body)
        location = self.management_urls(origin, instance_id)["statusQueryGetUri"]
        return ApiResponse(202, body, {"Location": location, "Retry-After": "10"})

    def _history_summary(self, instance_id: str, show_output: bool = False) -> list[dict[str, Any]]:
        """The history's events; with `show_output` also their payloads (JSON text), so the size of what an
        episode replays can be measured (devhost keeps the inputs of scheduled tasks there too)."""
        events = self.client.get_orchestration_history(instance_id)
        summary: list[dict[str, Any]] = []
        for event in events:
            entry: dict[str, Any] = {"EventType": type(event).__name__.removesuffix("Event")}
            timestamp = getattr(event, "timestamp", None)
            if isinstance(timestamp, datetime):
                entry["Timestamp"] = _iso(timestamp)
            for attr in ("name", "task_scheduled_id", "fire_at", "reason"):
                value = getattr(event, attr, None)
                if value is not None:
                    entry[attr] = _iso(value) if isinstance(value, datetime) else value
            if show_output:
                for attr, key in (("input", "Input"), ("result", "Result")):
                    payload = getattr(event, attr, None)
                    if payload is not None:
                        entry[key] = payload
            summary.append(entry)
        return summary

    def list(self, query: dict[str, str]) -> ApiResponse:
        statuses: list[dtc.OrchestrationStatus] = []
        for item in filter(None, query.get("runtimeStatus", "").split(",")):
            status = _BY_NAME.get(item.strip().lower())
            if status is None:
                return ApiResponse(
                    400,
                    {"error": f"runtimeStatus {item!r} is not one of {', '.join(_STATUS_NAMES.values())}"},
                )
            statuses.append(status)
        try:
            created_from = _parse_time(query.get("createdTimeFrom"))
            created_to = _parse_time(query.get("createdTimeTo"))
            top = _parse_top(query.get("top"))
        except ValueError as err:
            return ApiResponse(400, {"error": str(err)})
        states = self.client.get_all_orchestration_states(
            dtc.OrchestrationQuery(
                created_time_from=created_from,
                created_time_to=created_to,
                runtime_status=statuses or None,
                fetch_inputs_and_outputs=query.get("showInput", "").lower() == "true",
                instance_id_prefix=query.get("instanceIdPrefix") or None,
            )
        )
        prefix = query.get("instanceIdPrefix")
        if prefix:
            states = [s for s in states if s.instance_id.startswith(prefix)]
        states.sort(key=lambda s: s.created_at)
        if top is not None:
            states = states[:top]
        return ApiResponse(200, [self.status_body(s, query.get("showInput", "").lower() == "true") for s in states])

    def _require_live(self, instance_id: str) -> ApiResponse | None:
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=False)
        if state is None:
            return ApiResponse(404, {"error": f"no orchestration instance with id {instance_id!r}"})
        if state.runtime_status in TERMINAL:
            status = _STATUS_NAMES[state.runtime_status]
            return ApiResponse(410, {"error": f"instance {instance_id!r} is already {status}"})
        return None

    def terminate(self, instance_id: str, reason: str) -> ApiResponse:
        refused = self._require_live(instance_id)
        if refused:
            return refused
        self.client.terminate_orchestration(instance_id, output=reason or None)
        return ApiResponse(202)

    def suspend(self, instance_id: str, reason: str) -> ApiResponse:
        refused = self._require_live(instance_id)
        if refused:
            return refused
        self.client.suspend_orchestration(instance_id, reason=reason or None)
        return ApiResponse(202)

    def resume(self, instance_id: str, reason: str) -> ApiResponse:
        refused = self._require_live(instance_id)
        if refused:
            return refused
        self.client.resume_orchestration(instance_id, reason=reason or None)
        return ApiResponse(202)

    def raise_event(self, instance_id: str, event_name: str, body: bytes) -> ApiResponse:
        try:
            data = decode_client_json(body, root="data")
        except jsonbody.JsonNumberError as err:
            return ApiResponse(400, {"error": f"the event data is refused: {err}"})
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return ApiResponse(400, {"error": f"the event data is not valid JSON: {err}"})
        except RecursionError:
            return ApiResponse(400, {"error": "the event data is nested too deeply"})
        refused = self._require_live(instance_id)
        if refused:
            return refused
        self.client.raise_orchestration_event(instance_id, event_name, data=data)
        return ApiResponse(202)

    def purge(self, instance_id: str) -> ApiResponse:
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=False)
        if state is None:
            return ApiResponse(404, {"error": f"no orchestration instance with id {instance_id!r}"})
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


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_top(text: str | None) -> int | None:
    if not text:
        return None
    # int() of a very long digit string raises a ValueError naming sys.set_int_max_str_digits: say what we want.
    if not text.strip().isdigit() or len(text.strip()) > 9:
        raise ValueError(f"top: expected a whole number of at most 9 digits, got {text[:24]!r}")
    return int(text)
