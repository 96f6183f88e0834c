"""Loopback HTTPS stand-in of the Azure Resource Manager computes API of Azure ML, for the real MLClient.

Serves list (paged), get, and stop/start/restart (202 + Azure-AsyncOperation, polled operation status) over a
fleet seeded from JSON; state transitions take `transition_seconds`; fault rules inject given answers.
Stop on an already stopped instance answers 400 (real ARM's answer is undocumented; the app reads state first).
Start follows Stopped -> Starting -> Running; quota or capacity refusals are fault rules carrying ARM's code and
message (e.g. status 400, code QuotaExceeded), or `operation_status: "Failed"` for a start that fails later.
With `throttle="arm"` it enforces ARM's token buckets per subscription (reads 250 refilled at 25/s, writes 200
refilled at 10/s): 429 with Retry-After when empty, `x-ms-ratelimit-remaining-subscription-reads/-writes` on
every answer.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devhost.standins.loopback import BackgroundServer
from devhost.standins.tls import LocalTls

log = logging.getLogger(__name__)

SAMPLE_FLEET = Path(__file__).resolve().parent / "fleet.sample.json"
PROVIDER = "Microsoft.MachineLearningServices"
TRANSITIONAL = frozenset({"Creating", "Deleting", "Restarting", "SettingUp", "Starting", "Stopping", "UserSettingUp"})
STOPPABLE = frozenset({"Running", "JobRunning"})
ERROR_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

_WS = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    rf"/providers/{re.escape(PROVIDER)}/workspaces/(?P<ws>[^/]+)"
)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^{_WS}/computes/?$", re.I), "list"),
    ("GET", re.compile(rf"^{_WS}/computes/(?P<name>[^/]+)$", re.I), "get"),
    ("POST", re.compile(rf"^{_WS}/computes/(?P<name>[^/]+)/(?P<action>stop|start|restart)$", re.I), "action"),
    (
        "GET",
        re.compile(
            rf"^/subscriptions/(?P<sub>[^/]+)/providers/{re.escape(PROVIDER)}/locations/(?P<loc>[^/]+)"
            r"/computeOperationsStatus/(?P<op>[^/]+)$",
            re.I,
        ),
        "operation",
    ),
]


Reply = tuple[int, dict[str, str], Any]


class _Answer(Exception):  # a control-flow signal, not an error
    """Raised by a route helper to answer at once (e.g. 404)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FaultRule:
    """An injected answer: the first rule whose method and path match a request (in order) is consumed.

    `status` None answers normally after `delay_seconds` (a slow call); `operation_status="Failed"` on a
    stop/start lets ARM accept it (202) but the long-running operation ends Failed and the state reverts.
    `count` None applies forever.
    """

    method: str = "*"
    path_regex: str = ".*"
    status: int | None = None
    count: int | None = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    code: str | None = None
    message: str | None = None
    delay_seconds: float = 0.0
    operation_status: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        return self.method in ("*", method.upper()) and re.search(self.path_regex, path, re.I) is not None

    def error_body(self) -> Any:
        if self.body is not None:
            return self.body
        status = self.status or 500
        code = self.code or ERROR_CODES.get(status, f"Http{status}")
        return {"error": {"code": code, "message": self.message or f"Injected fault: {status} {code}"}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "hits"}
        return cls(**known)


@dataclass
class _Operation:
    op_id: str
    name: str  # Stop / Start / Restart
    started: float
    ends: float
    target_state: str
    revert_state: str
    fails: bool
    error: dict[str, str] | None = None
    status: str = "InProgress"


@dataclass
class _Compute:
    body: dict[str, Any]
    operation: _Operation | None = None

    @property
    def inner(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.setdefault("properties", {}).setdefault("properties", {})
        return props

    @property
    def state(self) -> str:
        return str(self.inner.get("state", "Unknown"))

    @state.setter
    def state(self, value: str) -> None:
        self.inner["state"] = value

    def advance(self, now: float) -> None:
        op = self.operation
        if op is None or op.status != "InProgress" or now < op.ends:
            return
        if op.fails:
            op.status = "Failed"
            op.error = op.error or {"code": "InternalServerError", "message": f"{op.name} operation failed"}
            self.state = op.revert_state
        else:
            op.status = "Succeeded"
            self.state = op.target_state
        self.inner["lastOperation"] = {
            "operationName": op.name,
            "operationTime": _iso(time.time() - (time.monotonic() - op.started)),  # op.started is monotonic
            "operationStatus": op.status,
        }


@dataclass
class _Workspace:
    subscription: str
    resource_group: str
    name: str
    location: str
    computes: dict[str, _Compute] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.subscription}/{self.resource_group}/{self.name}"

    @property
    def path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.name}"
        )


# ARM's published limits per subscription and principal (FACTS.md): capacity, refill per second.
ARM_BUCKETS: dict[str, tuple[float, float]] = {"reads": (250.0, 25.0), "writes": (200.0, 10.0)}
THROTTLE_MODES = ("off", "arm")
_SUBSCRIPTION_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.I)


@dataclass
class _Bucket:
    capacity: float
    refill: float
    tokens: float
    updated: float

    def take(self, now: float) -> float | None:
        """A token, or the seconds until one is there."""
        # Callers read the clock before taking the stand-in's lock: a request that waited for it may bring an
        # instant older than the last one, which must not take back refill already given.
        now = max(now, self.updated)
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.refill


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int
    at: float


def _complete_body(ws: _Workspace, raw: Mapping[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(dict(raw))
    name = str(body["name"])
    body.setdefault("id", f"{ws.path}/computes/{name}")
    body.setdefault("type", f"{PROVIDER}/workspaces/computes")
    body.setdefault("location", ws.location)
    body.setdefault("tags", {})
    props = body.setdefault("properties", {})
    props.setdefault("computeType", "ComputeInstance")
    props.setdefault("computeLocation", ws.location)
    props.setdefault("provisioningState", "Succeeded")
    props.setdefault("createdOn", "2025-01-06T09:00:00Z")
    props.setdefault("modifiedOn", "2025-01-06T09:05:00Z")
    props.setdefault("disableLocalAuth", True)
    if props["computeType"] == "ComputeInstance":
        inner = props.setdefault("properties", {})
        inner.setdefault("state", "Running")
        inner.setdefault("vmSize", "STANDARD_DS3_V2")
    return body


def _refusal(action: str, compute: _Compute) -> Reply | None:
    """ARM's answer when `action` is not allowed on `compute` in its current state (None: it is allowed)."""
    state = compute.state

    def error(code: str, message: str, status: int = 400) -> Reply:
        return status, {}, {"error": {"code": code, "message": message}}

    if compute.body["properties"].get("computeType") != "ComputeInstance":
        return error("BadArgument", f"{action} is only supported for compute instances.")
    if state in TRANSITIONAL:
        return error(
            "Conflict",
            f"Compute instance '{compute.body['name']}' is in a transition state ({state}); "
            "retry after the current operation completes.",
            409,
        )
    if action == "start" and state != "Stopped":
        return error(
            "StartComputeInstanceOnlyAllowedInStoppedState",
            f"Start is only allowed in Stopped state; the instance is {state}.",
        )
    if action in ("stop", "restart") and state not in STOPPABLE:
        return error("UserError", f"{action.capitalize()} is not allowed: the compute instance is {state}.")
    return None


def load_fleet(source: Path | str | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fleet description (the JSON format of fleet.sample.json); the sample when `source` is None."""
    if source is None:
        source = SAMPLE_FLEET
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    data: dict[str, Any] = json.loads(Path(source).read_text(encoding="utf-8"))
    return data


def generate_fleet(
    workspaces: int = 5,
    per_workspace: int = 100,
    *,
    subscription: str = "00000000-0000-0000-0000-00000000b0b0",
    resource_group: str = "rg-bench",
    location: str = "westeurope",
    state: str = "Running",
) -> dict[str, Any]:
    """A large fleet for benchmarks: `workspaces` x `per_workspace` instances in `state`, tagged only with a team,
    each created by one of 50 people (ARM's `createdBy`: who is told before a stop)."""
    return {
        "location": location,
        "workspaces": [
            {
                "subscription": subscription,
                "resource_group": resource_group,
                "name": f"ws-bench-{w:02d}",
                "computes": [
                    {
                        "name": f"ci-{w:02d}-{i:04d}",
                        "tags": {"team": f"team-{i % 7}"},
                        "properties": {
                            "computeType": "ComputeInstance",
                            "properties": {
                                "state": state,
                                "vmSize": "STANDARD_DS3_V2",
                                "idleTimeBeforeShutdown": "PT60M",
                                "createdBy": {
                                    "userName": f"User {i % 50:02d}",
                                    "userOrgId": "72f988bf-0000-4000-8000-00000000d001",
                                    "userId": f"00000000-0000-4000-8000-{i % 50:012d}",
                                },
                            },
                        },
                    }
                    for i in range(per_workspace)
                ],
            }
            for w in range(workspaces)
        ],
    }


def workspace_keys(fleet: Mapping[str, Any]) -> list[str]:
    """`subscription/resource-group/workspace` of every workspace of a fleet description (for AML_WORKSPACES)."""
    return [f"{w['subscription']}/{w['resource_group']}/{w['name']}" for w in fleet["workspaces"]]


class ArmStandin:
    """The ARM computes API of Azure ML on https://127.0.0.1:{port}, served from a background thread."""

    def __init__(
        self,
        fleet: Path | str | Mapping[str, Any] | None,
        tls: LocalTls,
        *,
        transition_seconds: float = 1.0,
        page_size: int = 3,
        faults: Iterable[FaultRule | Mapping[str, Any]] = (),
        token_validator: Callable[[str], bool] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        throttle: str = "off",
    ) -> None:
        description = load_fleet(fleet)
        if throttle not in THROTTLE_MODES:
            raise ValueError(f"throttle must be one of {', '.join(THROTTLE_MODES)}, got {throttle!r}")
        self.throttle = throttle
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.transition_seconds = transition_seconds
        self.page_size = page_size
        self.token_validator = token_validator
        self._tls = tls
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._workspaces: dict[str, _Workspace] = {}
        self._operations: dict[str, tuple[_Workspace, _Compute]] = {}
        self.faults: list[FaultRule] = []
        self.log: list[RequestRecord] = []
        self._workspaces = self._seed(description)
        for rule in faults:
            self.add_fault(rule)
        self._http = BackgroundServer("arm-standin")
        self.base_url = ""

    @classmethod
    def _seed(cls, description: Mapping[str, Any]) -> dict[str, _Workspace]:
        location = str(description.get("location", "westeurope"))
        workspaces: dict[str, _Workspace] = {}
        for w in description["workspaces"]:
            ws = _Workspace(
                str(w["subscription"]),
                str(w["resource_group"]),
                str(w["name"]),
                str(w.get("location", location)),
            )
            for raw in w.get("computes", []):
                body = _complete_body(ws, raw)
                ws.computes[body["name"].lower()] = _Compute(body)
            workspaces[cls._ws_id(ws.subscription, ws.resource_group, ws.name)] = ws
        return workspaces

    def reload(self, fleet: Path | str | Mapping[str, Any] | None = None) -> None:
        """A fresh fleet on the same endpoint (e.g. between tests): the faults and the request log are cleared.

        Operations in flight end at once (they answer their final status), so the pollers of a client that
        outlived the old fleet stop polling instead of meeting a 404 or polling on for minutes.
        """
        workspaces = self._seed(load_fleet(fleet))
        now = time.monotonic()
        with self._lock:
            for _, compute in self._operations.values():
                if compute.operation is not None and compute.operation.status == "InProgress":
                    compute.operation.ends = min(compute.operation.ends, now)
                    compute.advance(now)
            self._workspaces = workspaces
            self.faults.clear()
            self.log.clear()
            self._buckets.clear()

    # --- test-facing view -----------------------------------------------------------------------------
    @staticmethod
    def _ws_id(sub: str, rg: str, name: str) -> str:
        return f"{sub}/{rg}/{name}".lower()

    def _find_ws(self, workspace: str) -> _Workspace:
        wanted = workspace.strip("/").lower()
        for key, ws in self._workspaces.items():
            if key == wanted or ws.name.lower() == wanted:
                return ws
        raise KeyError(f"no workspace {workspace!r} in the stand-in fleet")

    def _find(self, workspace: str, name: str) -> _Compute:
        compute = self._find_ws(workspace).computes.get(name.lower())
        if compute is None:
            raise KeyError(f"no compute {name!r} in workspace {workspace!r}")
        return compute

    def state_of(self, workspace: str, name: str) -> str:
        """Current state of one instance (`workspace` as key or bare name), transitions applied."""
        with self._lock:
            compute = self._find(workspace, name)
            compute.advance(time.monotonic())
            return compute.state

    def states(self) -> dict[tuple[str, str], str]:
        """(workspace key, compute name) -> state, for every ComputeInstance of the fleet."""
        now = time.monotonic()
        with self._lock:
            out: dict[tuple[str, str], str] = {}
            for ws in self._workspaces.values():
                for compute in ws.computes.values():
                    if compute.body["properties"].get("computeType") == "ComputeInstance":
                        compute.advance(now)
                        out[(ws.key, compute.body["name"])] = compute.state
            return out

    def set_state(self, workspace: str, name: str, state: str) -> None:
        with self._lock:
            compute = self._find(workspace, name)
            compute.operation = None
            compute.state = state

    def remove(self, workspace: str, name: str) -> None:
        """Delete an instance behind the app's back (it then answers 404)."""
        with self._lock:
            self._find_ws(workspace).computes.pop(name.lower())

    def add_fault(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        fault = rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule)
        with self._lock:
            self.faults.append(fault)
        return fault

    def request_counts(self) -> dict[str, int]:
        """Requests answered since the start (or the last reload/reset), as ARM counts them: reads and writes."""
        with self._lock:
            reads = sum(1 for r in self.log if r.method in ("GET", "HEAD"))
            return {"reads": reads, "writes": len(self.log) - reads}

    def reset_counts(self) -> None:
        """Forget the request log and refill the buckets (between benchmark runs)."""
        with self._lock:
            self.log.clear()
            self._buckets.clear()

    def _throttled(self, method: str, path: str) -> Reply | dict[str, str]:
        """With ARM's buckets on: a 429 reply, or the remaining-requests header of the answer."""
        if self.throttle != "arm":
            return {}
        match = _SUBSCRIPTION_RE.match(path)
        if match is None:
            return {}
        kind = "reads" if method in ("GET", "HEAD") else "writes"
        header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        now = time.monotonic()
        with self._lock:
            key = (match["sub"].lower(), kind)
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity, refill = ARM_BUCKETS[kind]
                bucket = self._buckets[key] = _Bucket(capacity, refill, capacity, now)
            wait = bucket.take(now)
            remaining = str(max(0, int(bucket.tokens)))
        if wait is None:
            return {header: remaining}
        return (
            429,
            {"Retry-After": str(max(1, math.ceil(wait))), header: "0"},
            {
                "error": {
                    "code": "SubscriptionRequestsThrottled",
                    "message": f"Number of '{kind[:-1]}' requests for subscription '{match['sub']}' exceeded the "
                    f"limit; retry after {max(1, math.ceil(wait))} seconds.",
                }
            },
        )

    def requests(self, method: str | None = None, path_regex: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method.upper())
                and (path_regex is None or re.search(path_regex, r.path, re.I))
            ]

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            arm = standin

        port = self._http.start(Handler, self._host, self._port, self._tls)
        self.base_url = f"https://{self._host}:{port}"
        log.info("ARM stand-in on %s (%d workspaces)", self.base_url, len(self._workspaces))
        return self.base_url

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> ArmStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the API ----------------------------------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def handle(self, method: str, path: str, query: Mapping[str, list[str]], authorization: str | None) -> Reply:
        token = (authorization or "")[7:].strip() if (authorization or "").lower().startswith("bearer ") else ""
        if not token or (self.token_validator is not None and not self.token_validator(token)):
            return (
                401,
                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/"'},
                {
                    "error": {
                        "code": "AuthenticationFailed",
                        "message": "Authentication failed: missing or invalid bearer token.",
                    }
                },
            )
        if not query.get("api-version"):
            return (
                400,
                {},
                {
                    "error": {
                        "code": "MissingApiVersionParameter",
                        "message": "The api-version query parameter (?api-version=) is required.",
                    }
                },
            )
        throttled = self._throttled(method, path)
        if isinstance(throttled, tuple):
            return throttled
        status, headers, body = self._dispatch(method, path, query)
        return status, {**throttled, **headers}, body

    def _dispatch(self, method: str, path: str, query: Mapping[str, list[str]]) -> Reply:
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault.status is not None:
                return fault.status, dict(fault.headers), fault.error_body()
        for route_method, pattern, kind in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    with self._lock:
                        reply: Reply = getattr(self, f"_{kind}")(match, query, fault)
                        return reply
                except _Answer as answer:
                    return answer.status, {}, answer.body
        return (
            404,
            {},
            {
                "error": {
                    "code": "NoRegisteredProviderFound" if "providers" in path else "NotFound",
                    "message": f"No route for {method} {path}",
                }
            },
        )

    def _workspace_or_404(self, match: re.Match[str]) -> _Workspace:
        ws = self._workspaces.get(self._ws_id(match["sub"], match["rg"], match["ws"]))
        if ws is None:
            raise _Answer(
                404,
                {
                    "error": {
                        "code": "ResourceNotFound",
                        "message": f"The Resource '{PROVIDER}/workspaces/{match['ws']}' under resource "
                        f"group '{match['rg']}' was not found.",
                    }
                },
            )
        return ws

    def _compute_or_404(self, match: re.Match[str]) -> tuple[_Workspace, _Compute]:
        ws = self._workspace_or_404(match)
        compute = ws.computes.get(match["name"].lower())
        if compute is None:
            raise _Answer(
                404,
                {
                    "error": {
                        "code": "ResourceNotFound",
                        "message": f"Compute '{match['name']}' was not found in workspace '{ws.name}'.",
                    }
                },
            )
        compute.advance(time.monotonic())
        return ws, compute

    def _list(self, match: re.Match[str], query: Mapping[str, list[str]], _: FaultRule | None) -> Reply:
        ws = self._workspace_or_404(match)
        now = time.monotonic()
        computes = sorted(ws.computes.values(), key=lambda c: str(c.body["name"]).lower())
        for c in computes:
            c.advance(now)
        skip = int((query.get("$skipToken") or ["0"])[0])
        page = computes[skip : skip + self.page_size]
        body: dict[str, Any] = {"value": [copy.deepcopy(c.body) for c in page]}
        if skip + self.page_size < len(computes):
            version = query["api-version"][0]
            body["nextLink"] = (
                f"{self.base_url}{ws.path}/computes?api-version={version}&$skipToken={skip + self.page_size}"
            )
        return 200, {}, body

    def _get(self, match: re.Match[str], query: Mapping[str, list[str]], _: FaultRule | None) -> Reply:
        return 200, {}, copy.deepcopy(self._compute_or_404(match)[1].body)

    def _action(self, match: re.Match[str], query: Mapping[str, list[str]], fault: FaultRule | None) -> Reply:
        ws, compute = self._compute_or_404(match)
        action = match["action"].lower()
        refused = _refusal(action, compute)
        if refused is not None:
            return refused
        op = self._begin(ws, compute, action, fault)
        status_url = (
            f"{self.base_url}/subscriptions/{ws.subscription}/providers/{PROVIDER}/locations/"
            f"{ws.location}/computeOperationsStatus/{op.op_id}?api-version={query['api-version'][0]}"
        )
        return 202, {"Azure-AsyncOperation": status_url}, None

    def _begin(self, ws: _Workspace, compute: _Compute, action: str, fault: FaultRule | None) -> _Operation:
        """Put `compute` in the action's interim state with an operation that settles after transition_seconds
        (in the target state, or back in its state when a fault says the operation fails)."""
        now = time.monotonic()
        interim, target, name = {
            "stop": ("Stopping", "Stopped", "Stop"),
            "start": ("Starting", "Running", "Start"),
            "restart": ("Restarting", "Running", "Restart"),
        }[action]
        fails = fault is not None and (fault.operation_status or "").lower() == "failed"
        op = _Operation(
            op_id=str(uuid.uuid4()),
            name=name,
            started=now,
            ends=now + self.transition_seconds,
            target_state=target,
            revert_state=compute.state,
            fails=fails,
            error=(
                fault.error_body().get("error")
                if fails and fault is not None and (fault.body or fault.message)
                else None
            ),
        )
        compute.operation = op
        compute.state = interim
        compute.inner["lastOperation"] = {
            "operationName": name,
            "operationTime": _iso(time.time()),
            "operationStatus": "InProgress",
        }
        self._operations[op.op_id] = (ws, compute)
        return op

    def _operation(self, match: re.Match[str], query: Mapping[str, list[str]], _: FaultRule | None) -> Reply:
        found = self._operations.get(match["op"])
        if found is None:
            return (
                404,
                {},
                {"error": {"code": "ResourceNotFound", "message": f"Operation {match['op']} not found."}},
            )
        compute = found[1]
        compute.advance(time.monotonic())
        op = compute.operation if compute.operation and compute.operation.op_id == match["op"] else None
        if op is None:  # superseded by a later operation or a test's set_state: it is over
            return 200, {}, {"id": match.string, "name": match["op"], "status": "Succeeded"}
        body: dict[str, Any] = {
            "id": match.string,
            "name": op.op_id,
            "status": op.status,
            "startTime": _iso(time.time() - (time.monotonic() - op.started)),
        }
        if op.status != "InProgress":
            body["endTime"] = _iso(time.time() - (time.monotonic() - op.ends))
        if op.error and op.status == "Failed":
            body["error"] = op.error
        return 200, {}, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses connections, sparing TLS handshakes
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    arm: ArmStandin

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        query = parse_qs(parts.query)
        status, headers, body = self.arm.handle(self.command, parts.path, query, self.headers.get("Authorization"))
        payload = b"" if body is None else json.dumps(body).encode()
        # Recorded before the answer leaves: a client that has its answer must find the request in the log.
        with self.arm._lock:
            self.arm.log.append(RequestRecord(self.command, parts.path, parts.query, status, time.monotonic()))
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve  # noqa: N815 - http.server's naming
    do_POST = _serve  # noqa: N815
    do_PUT = _serve  # noqa: N815
    do_DELETE = _serve  # noqa: N815

    def handle(self) -> None:
        # A client that drops the connection or fails the TLS handshake must not print tracebacks.
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("arm-standin: " + format, *args)
