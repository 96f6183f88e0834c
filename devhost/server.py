"""devhost's HTTP front: HTTP triggers at /api, the Event Grid webhook, the Durable HTTP API, host status."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from aiohttp import web

from devhost import logsafe
from devhost.durable_api import WEBHOOK_PREFIX, ApiResponse, DurableApi, Query
from devhost.entity_api import EntityApi
from devhost.eventgrid import DeliveryError, allowed_origin, parse_delivery
from devhost.index import AppIndex, FunctionSpec
from devhost.invocation import DevContext, build_kwargs, child_traceparent
from devhost.keys import DURABLETASK_EXTENSION, EVENTGRID_EXTENSION, HostKeys, presented_key

log = logging.getLogger("devhost")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # the Functions host's default maxRequestBodySize
# A response header of devhost's own Event Grid webhook: the Durable instances the invocation started, which the
# blob relay waits for before it forgets the event (Event Grid itself sees no such header; Azure keeps them).
STARTED_INSTANCES_HEADER = "x-devhost-started-instances"
# Kestrel's defaults in front of the Functions host: request line 8 KiB (414 beyond), all headers 32 KiB (431).
MAX_REQUEST_LINE = 8192
MAX_REQUEST_HEADERS = 32 * 1024
# aiohttp's own parser limits sit above those, so the host answers 414/431 itself; past these aiohttp answers 400
# (logged as one line by ParseErrorLogger).
PARSER_MAX_LINE = 64 * 1024


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body), content_type="application/json", headers=headers)


class FunctionFailed(Exception):
    def __init__(self, invocation_id: str):
        super().__init__(invocation_id)
        self.invocation_id = invocation_id


@dataclass(frozen=True)
class Invoked:
    """What a function returned, and the Durable instances it started."""

    result: Any
    started: list[str]


class Invoker:
    """Invokes functions as the Python worker does: async ones on the loop, sync ones in a thread pool."""

    def __init__(
        self,
        script_root: str,
        durable: DurableApi | None,
        rpc_base_url: str,
        timeout: float | None,
    ):
        self.script_root = script_root
        self.durable = durable
        self.rpc_base_url = rpc_base_url  # ends with /: the invocation's id and `durabletask/` follow
        self.timeout = timeout

    def client_json(self, origin: str, invocation_id: str) -> str | None:
        # The client's RPC calls name the invocation, so the instances it starts are known (DurableApi.started_by).
        rpc_base = f"{self.rpc_base_url}{invocation_id}/durabletask/"
        return self.durable.client_binding(origin, rpc_base) if self.durable else None

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        origin: str,
        traceparent: str | None,
        tracestate: str = "",
    ) -> Invoked:
        context = DevContext(spec.name, self.script_root, child_traceparent(traceparent), tracestate)
        kwargs = build_kwargs(spec, trigger_value, context, partial(self.client_json, origin, context.invocation_id))
        started = time.perf_counter()
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, _reason(spec), context.invocation_id)
        try:
            if spec.is_async:
                call: Awaitable[Any] = spec.func(**kwargs)
            else:
                call = asyncio.get_running_loop().run_in_executor(None, partial(spec.func, **kwargs))
            result = await asyncio.wait_for(call, self.timeout) if self.timeout else await call
        except Exception:
            self._started(context.invocation_id)
            log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
                spec.name,
                context.invocation_id,
                (time.perf_counter() - started) * 1000,
            )
            raise FunctionFailed(context.invocation_id) from None
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
            spec.name,
            context.invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return Invoked(result, self._started(context.invocation_id))

    def _started(self, invocation_id: str) -> list[str]:
        return self.durable.started_by(invocation_id) if self.durable else []


def _reason(spec: FunctionSpec) -> str:
    """Why the host runs a function, as its execution log line says (Core Tools' output)."""
    if spec.trigger_type == "httpTrigger":
        return "This function was programmatically called via the host APIs."
    if spec.trigger_type == "timerTrigger":
        return f"Timer fired at {datetime.now(UTC).isoformat()}"
    return "(null)"


class HostServer:
    """Routes requests to functions and to the host's own endpoints, each behind the key Azure asks for."""

    def __init__(
        self,
        index: AppIndex,
        invoker: Invoker,
        keys: HostKeys,
        route_prefix: str,
        durable: DurableApi | None,
        rpc_token: str,
        entities: EntityApi | None = None,
    ):
        self.index = index
        self.entities = entities
        self.invoker = invoker
        self.keys = keys
        self.route_prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.durable = durable
        self.rpc_prefix = f"/_rpc/{rpc_token}/"
        self.started = datetime.now(UTC)
        self.notify_sink: Any = None  # devhost.standins.notify.NotifySink when DEVHOST_NOTIFY_SINK=on
        for value in keys.all_values:
            logsafe.register_secret(value)
        logsafe.register_secret(rpc_token)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BODY)
        # Every path, line breaks included (`.` stops at a decoded %0A, and aiohttp would answer its own 404 where
        # the Functions host routes the request to the function, e.g. a mangled token of /api/notices/{token}).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)
        return app

    @staticmethod
    def runner_options() -> dict[str, Any]:
        """Keyword arguments of the AppRunner serving `application()`: parser limits, a quiet parse-error log, and
        request bodies as they came: the Functions host does not decompress a `Content-Encoding: gzip` body, it
        hands the function the bytes (and the header)."""
        return {
            "max_line_size": PARSER_MAX_LINE,
            "max_field_size": PARSER_MAX_LINE,
            "logger": logsafe.ParseErrorLogger(),
            "auto_decompress": False,
        }

    @staticmethod
    def _oversized(request: web.Request) -> web.Response | None:
        line = len(request.method) + 1 + len(request.raw_path) + len(" HTTP/1.1")
        if line > MAX_REQUEST_LINE:
            return _json(
                414,
                {"error": f"the request line is {line} bytes, more than {MAX_REQUEST_LINE}; send long input as a body"},
            )
        headers = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
        if headers > MAX_REQUEST_HEADERS:
            return _json(431, {"error": f"the request headers are {headers} bytes, more than {MAX_REQUEST_HEADERS}"})
        return None

    # --- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _key(request: web.Request) -> str:
        return presented_key(request.headers, request.query)

    def _extension_key_refusal(self, request: web.Request, extension: str, what: str) -> web.Response | None:
        if self.keys.opens_extension(self._key(request), extension):
            return None
        return _json(
            401,
            {
                "error": f"{what} takes the {extension} system key or the master key (x-functions-key header or "
                "code parameter); a function key is not enough"
            },
        )

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        oversized = self._oversized(request)
        if oversized is not None:
            log.warning("refused %s request: HTTP %s (%s)", request.method, oversized.status, oversized.reason)
            return oversized
        try:
            if path.startswith(self.rpc_prefix):
                return await self._rpc(request, path[len(self.rpc_prefix) :])
            if path.startswith(WEBHOOK_PREFIX + "/") or path == WEBHOOK_PREFIX:
                refused = self._extension_key_refusal(request, DURABLETASK_EXTENSION, "the Durable HTTP API")
                return refused or await self._durable(request, path[len(WEBHOOK_PREFIX) :], None)
            if path == "/runtime/webhooks/eventgrid":
                refused = self._extension_key_refusal(request, EVENTGRID_EXTENSION, "the Event Grid webhook")
                return refused or await self._eventgrid(request)
            if path == "/admin/host/status":
                if not self.keys.opens_admin(self._key(request)):
                    return _json(401, {"error": "/admin takes the master key (DEVHOST_KEY)"})
                return _json(200, {"state": "Running", "version": "devhost", "startedAt": self.started.isoformat()})
            if path in ("/devhost/notifications", "/devhost/notifications.json"):
                return self._notifications(request)
            if self.route_prefix == "" or path == self.route_prefix or path.startswith(self.route_prefix + "/"):
                return await self._http_trigger(request, path[len(self.route_prefix) :])
            return _json(404, {"error": f"no endpoint at {path}"})
        except web.HTTPException:
            raise
        except Exception:
            log.exception("devhost failed to handle %s %s", request.method, path)
            return _json(500, {"error": "devhost internal error (see the host log)"})

    async def _rpc(self, request: web.Request, rest: str) -> web.StreamResponse:
        """The functions' own Durable client (its binding's rpcBaseUrl): `<invocation id>/durabletask/...`."""
        invocation_id, _, sub = rest.partition("/")
        if not sub.startswith("durabletask"):
            return _json(404, {"error": f"no endpoint at {request.path}"})
        return await self._durable(request, sub[len("durabletask") :], invocation_id or None)

    def _notifications(self, request: web.Request) -> web.Response:
        """What the notification sink recorded (DEVHOST_NOTIFY_SINK=on): the heads-up loop, offline."""
        if not self.keys.opens_function(self._key(request)):
            return _json(401, {"error": "a key is required (x-functions-key header or code)"})
        if self.notify_sink is None:
            return _json(404, {"error": "no notification sink: set DEVHOST_NOTIFY_SINK=on"})
        messages = self.notify_sink.snapshot()
        if request.path.endswith(".json"):
            return _json(200, messages)
        from devhost.standins.notify import render_page

        return web.Response(text=render_page(messages), content_type="text/html", charset="utf-8")

    # --- HTTP triggers ---------------------------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[FunctionSpec | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for spec in self.index.by_type("httpTrigger"):
            assert spec.route is not None
            params = spec.route.match(path)
            if params is None:
                continue
            if spec.methods and method not in spec.methods:
                allowed.extend(sorted(spec.methods))
                continue
            return spec, params, []
        return None, {}, allowed

    def _opens(self, spec: FunctionSpec, request: web.Request) -> bool:
        if spec.auth_level == "function":
            return self.keys.opens_function(self._key(request))
        if spec.auth_level in {"admin", "system"}:
            return self.keys.opens_admin(self._key(request))
        return True

    async def _http_trigger(self, request: web.Request, path: str) -> web.StreamResponse:
        spec, route_params, allowed = self._match(request.method, path)
        if spec is None:
            if allowed:
                return _json(
                    405,
                    {"error": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
                    {"Allow": ", ".join(allowed)},
                )
            return _json(404, {"error": f"no function handles {request.path}"})
        if not self._opens(spec, request):
            needed = "the master key" if spec.auth_level != "function" else "a function key or the master key"
            return _json(401, {"error": f"{spec.name} takes {needed} (x-functions-key header or code parameter)"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"request body exceeds {MAX_REQUEST_BODY} bytes"})
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=route_params,
            body=body,
        )
        try:
            invoked = await self.invoker.invoke(
                spec,
                http_request,
                self._origin(request),
                request.headers.get("traceparent"),
                request.headers.get("tracestate", ""),
            )
        except FunctionFailed as failed:
            return _json(500, {"error": f"function {spec.name} failed", "invocationId": failed.invocation_id})
        result = invoked.result
        if result is None:
            return web.Response(status=204)
        if not isinstance(result, func.HttpResponse):
            log.error("function %s returned %s, not an HttpResponse", spec.name, type(result).__name__)
            return _json(500, {"error": f"function {spec.name} returned no HttpResponse"})
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            ctype = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
            headers["Content-Type"] = ctype
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)

    # --- Event Grid ------------------------------------------------------------------------------------
    async def _eventgrid(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("functionName", "")
        spec = self.index.get(name) if name else None
        if spec is None or spec.trigger_type != "eventGridTrigger":
            return _json(404, {"error": f"no Event Grid function named {name!r}"})
        if request.method == "OPTIONS":  # CloudEvents abuse-protection handshake
            origin = allowed_origin(request.headers.get("WebHook-Request-Origin"))
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})
        if request.method != "POST":
            return _json(405, {"error": "the Event Grid webhook accepts POST"}, {"Allow": "POST, OPTIONS"})
        body = await request.read()
        try:
            delivery = parse_delivery(body, request.headers.get("aeg-event-type"))
        except DeliveryError as err:
            return _json(400, {"error": str(err)})
        if delivery.kind == "unsubscribe":
            log.info("Event Grid unsubscribed %s (acknowledged; the function stays enabled)", spec.name)
            return web.Response(status=202)
        if delivery.kind == "validation":
            log.info("Event Grid subscription validated for %s", spec.name)
            return _json(200, {"validationResponse": delivery.validation_code})
        return await self._notify(request, spec, delivery.events)

    async def _notify(
        self, request: web.Request, spec: FunctionSpec, events: tuple[dict[str, Any], ...]
    ) -> web.StreamResponse:
        from azure.functions.eventgrid import EventGridEventInConverter

        # Every event is converted before the first is invoked: a delivery the function cannot receive starts
        # nothing (400; Event Grid does not retry a 400). The Functions host would invoke the good events and
        # answer 500, making Event Grid redeliver the whole batch, the started ones included.
        values = []
        for position, event in enumerate(events):
            try:
                values.append(
                    EventGridEventInConverter.decode(
                        func.meta.Datum(type="json", value=json.dumps(event)), trigger_metadata=None
                    )
                )
            except Exception as err:  # the converter raises ValueError, TypeError, ... for what it cannot read
                # Its only parsing is of the event time, and it reads UTC alone (no +01:00 offsets).
                field = "time" if "specversion" in event else "eventTime"
                error = (
                    f"events[{position}].{field}: the Python worker reads UTC date-times such as "
                    f"2026-11-26T10:00:00Z, got {event.get(field)!r} ({err})"
                )
                return _json(400, {"error": error})
        started: list[str] = []
        for event, value in zip(events, values, strict=True):
            try:
                invoked = await self.invoker.invoke(
                    spec, value, self._origin(request), request.headers.get("traceparent")
                )
            except FunctionFailed as failed:
                # Non-2xx makes Event Grid redeliver the whole batch later.
                return _json(
                    500,
                    {
                        "error": f"function {spec.name} failed on event {event.get('id')}",
                        "invocationId": failed.invocation_id,
                    },
                )
            started.extend(invoked.started)
        listed = json.dumps(started)
        # The relay posts one event at a time; a large batch from elsewhere gets no header rather than a huge one.
        return web.Response(status=202, headers={STARTED_INSTANCES_HEADER: listed} if len(listed) <= 4096 else None)

    # --- Durable HTTP API ------------------------------------------------------------------------------
    async def _durable(self, request: web.Request, sub: str, invocation_id: str | None) -> web.StreamResponse:
        if self.durable is None:
            return _json(404, {"error": "the app has no Durable functions"})
        durable = self.durable
        parts = [p for p in sub.split("/") if p]
        query = Query(parse_qsl(request.query_string, keep_blank_values=True))
        origin = self._origin(request)
        body = await request.read()
        method = request.method
        loop = asyncio.get_running_loop()
        if parts[:1] == ["orchestrators"] and method == "POST" and len(parts) in (2, 3):
            instance_id = parts[2] if len(parts) == 3 else None
            start = partial(
                durable.start,
                origin,
                parts[1],
                instance_id,
                body,
                request.headers.get("traceparent"),
                query.get("version"),
                invocation_id,
            )
            response = await loop.run_in_executor(None, start)
            response = await self._maybe_wait(response, origin, query)
        elif parts[:1] == ["entities"] and self.entities is not None:
            entity_call = partial(
                self.entities.handle,
                method,
                parts[1:],
                dict(parse_qsl(request.query_string, keep_blank_values=True)),
                body,
                request.headers.get("Content-Type", ""),
            )
            response = await loop.run_in_executor(None, entity_call)
        else:
            call = self._instance_call(durable, request, parts, query, body)
            if call is None:
                return _json(404, {"error": f"no Durable API operation {method} {sub}"})
            response = await loop.run_in_executor(None, call)
            if parts[-1:] == ["restart"]:
                response = await self._maybe_wait(response, origin, query)
        return web.Response(
            status=response.status,
            body=response.encoded(),
            headers=response.headers,
            content_type="application/json" if response.body is not None else None,
        )

    async def _maybe_wait(self, response: ApiResponse, origin: str, query: Query) -> ApiResponse:
        """create-and-wait: with `timeout` and `pollingInterval`, a start (or restart) waits for the instance."""
        if response.status != 202 or self.durable is None:
            return response
        plan = self.durable.wait_plan(query)
        if plan is None:
            return response
        if isinstance(plan, ApiResponse):
            return plan
        timeout, interval = plan
        return await self.durable.wait_for_completion(origin, response.body["id"], timeout, interval, query)

    @staticmethod
    def _instance_call(
        durable: DurableApi, request: web.Request, parts: list[str], query: Query, body: bytes
    ) -> Callable[[], ApiResponse] | None:
        """The /instances operation a request names (HttpApiHandler's routes), or None."""
        method = request.method
        if parts[:1] != ["instances"]:
            return None
        if len(parts) == 1:
            if method == "GET":
                return partial(durable.list, query)
            if method == "DELETE":
                return partial(durable.purge_by_filter, query)
            return None
        instance_id = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return partial(durable.status, str(request.url), instance_id, query)
            if method == "DELETE":
                return partial(durable.purge, instance_id)
            return None
        if method != "POST":
            return None
        operation = parts[2].lower()
        if len(parts) == 4 and parts[2] == "raiseEvent":
            return partial(durable.raise_event, instance_id, parts[3], body, request.headers.get("Content-Type"))
        if len(parts) != 3:
            return None
        if operation in {"terminate", "suspend", "resume", "rewind"}:
            return partial(getattr(durable, operation), instance_id, query)
        if operation == "restart":
            return partial(durable.restart, f"{request.scheme}://{request.host}", instance_id, query)
        return None
