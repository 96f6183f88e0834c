"""Loopback stand-in of where heads-ups go: webhook, Teams and Slack endpoints, and Azure Communication Services Email.

It records what would have been sent, so `make run` shows the whole heads-up loop offline (devhost serves the record
at /devhost/notifications) and tests read what arrived:

- any `POST` other than ACS's is a webhook: the JSON body is recorded (kind told from its shape: our generic
  `notices`, a Teams message with an Adaptive Card, Slack `blocks`), answered 200 (Teams Workflows answers 202);
- `POST /emails:send?api-version=...` is ACS Email as the real SDK calls it: a bearer token from the identity
  stand-in is required, the body must be an EmailMessage (senderAddress, recipients.to[].address, content.subject;
  Azure/azure-rest-api-specs, specification/communication/data-plane/Email/stable/2025-09-01), an `Operation-Id` seen
  before is the same operation (recorded once); it answers 202 with `Operation-Location`, and
  `GET /emails/operations/{id}` answers Succeeded.

Fault rules make a path answer a given status (429 with Retry-After, 5xx) or answer late, a number of times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devhost.standins.loopback import BackgroundServer
from devhost.standins.tls import LocalTls

log = logging.getLogger(__name__)

HOST_SUFFIX = ".devhost.invalid"  # names the app's channels use through devhost's proxy (`.invalid` never resolves)
MAX_BODY = 1024 * 1024
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class SinkMessage:
    """One message as it arrived."""

    at: str
    kind: str  # webhook | teams | slack | email | unknown
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "path": self.path, "body": self.body}


@dataclass
class SinkFault:
    path_regex: str
    status: int
    count: int = 1
    retry_after: str | None = None
    delay_seconds: float = 0.0
    hits: int = 0


def kind_of(body: Any) -> str:
    if isinstance(body, dict):
        if isinstance(body.get("notices"), list):
            return "webhook"
        if body.get("type") == "message" and isinstance(body.get("attachments"), list):
            return "teams"
        if isinstance(body.get("blocks"), list):
            return "slack"
    return "unknown"


def email_problems(body: Any) -> list[str]:
    """What makes `body` no EmailMessage of ACS's REST API (the required fields and their types)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = []
    if not isinstance(body.get("senderAddress"), str) or not _EMAIL_RE.match(body["senderAddress"]):
        problems.append("senderAddress is required: an email address")
    content = body.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("subject"), str) or not content["subject"]:
        problems.append("content.subject is required")
    elif not any(isinstance(content.get(k), str) for k in ("plainText", "html")):
        problems.append("content needs plainText or html")
    recipients = body.get("recipients")
    to = recipients.get("to") if isinstance(recipients, dict) else None
    if not isinstance(to, list) or not to:
        problems.append("recipients.to is required: a non-empty list")
    else:
        for i, entry in enumerate(to):
            if not isinstance(entry, dict) or not _EMAIL_RE.match(str(entry.get("address", ""))):
                problems.append(f"recipients.to[{i}].address is not an email address")
    return problems


class NotifySink:
    """Served on https://127.0.0.1:{port} (or http without `tls`) from a background thread."""

    def __init__(
        self,
        tls: LocalTls | None = None,
        *,
        token_validator: Callable[[str], bool] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._tls = tls
        self.token_validator = token_validator
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self.messages: list[SinkMessage] = []
        self.faults: list[SinkFault] = []
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        self._operations: dict[str, str] = {}  # Operation-Id -> status
        self._http = BackgroundServer("notify-sink")
        self.url = ""

    # --- test-facing ----------------------------------------------------------------------------------------
    def received(self, kind: str | None = None) -> list[SinkMessage]:
        with self._lock:
            return [m for m in self.messages if kind is None or m.kind == kind]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.faults.clear()
            self.requests.clear()

    def fail(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        *,
        retry_after: str | None = None,
        delay_seconds: float = 0.0,
    ) -> SinkFault:
        fault = SinkFault(path_regex, status, count, retry_after, delay_seconds)
        with self._lock:
            self.faults.append(fault)
        return fault

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.to_dict() for m in self.messages]

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> str:
        sink = self

        class Handler(_Handler):
            standin = sink

        port = self._http.start(Handler, self._host, self._port, self._tls)
        self.url = f"{'https' if self._tls else 'http'}://{self._host}:{port}"
        log.info("notification sink on %s", self.url)
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> NotifySink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the API --------------------------------------------------------------------------------------------
    def _fault(self, path: str) -> SinkFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.hits < fault.count and re.search(fault.path_regex, path):
                    fault.hits += 1
                    return fault
        return None

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        fault = self._fault(path)
        if fault is not None:
            time.sleep(fault.delay_seconds)
            if fault.status:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return fault.status, extra, {"error": {"code": "Injected", "message": f"injected {fault.status}"}}
        if method == "POST" and path == "/emails:send":
            return self._email(query, headers, body)
        if method == "GET" and path.startswith("/emails/operations/"):
            op = path.rsplit("/", 1)[1]
            with self._lock:
                status = self._operations.get(op)
            if status is None:
                return 404, {}, {"error": {"code": "NotFound", "message": f"operation {op} not found"}}
            return 200, {}, {"id": op, "status": status}
        if method == "POST":
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return 400, {}, {"error": "the body is not JSON"}
            kind = kind_of(data)
            self._record(SinkMessage(_now(), kind, path, data))
            return (202 if kind == "teams" else 200), {}, "ok"
        if method == "GET" and path in ("/", "/messages"):
            return 200, {}, self.snapshot()
        return 404, {}, {"error": f"no route {method} {path}"}

    def _email(
        self, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        def error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
            return status, {"x-ms-error-code": code}, {"error": {"code": code, "message": message}}

        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or (self.token_validator is not None and not self.token_validator(token)):
            return error(401, "Unauthorized", "a bearer token from the managed identity is required")
        if not query.get("api-version"):
            return error(400, "MissingApiVersion", "api-version is required")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "BadRequest", "the body is not JSON")
        problems = email_problems(data)
        if problems:
            return error(400, "BadRequest", "; ".join(problems))
        op = headers.get("operation-id") or str(uuid.uuid4())
        with self._lock:
            seen = op in self._operations
            self._operations[op] = "Succeeded"
        if not seen:
            self._record(SinkMessage(_now(), "email", "/emails:send", data, {"operation-id": op}))
        version = query["api-version"][0]
        location = f"{self.url}/emails/operations/{op}?api-version={version}"
        return 202, {"Operation-Location": location, "retry-after": "1"}, {"id": op, "status": "Running"}

    def _record(self, message: SinkMessage) -> None:
        with self._lock:
            self.messages.append(message)
        log.info("notification sink: %s message at %s", message.kind, message.path)


def _summary(message: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """Who a recorded message is for and its (instance, link) pairs, whatever its kind."""
    body = message["body"]
    text = json.dumps(body)
    found = re.findall(r"(https?://[^\s\"<>|)]+/api/notices/[A-Za-z0-9._-]+)", text)
    if message["kind"] == "webhook":
        pairs = [(n.get("instance", ""), n.get("links", {}).get("review", "")) for n in body.get("notices", [])]
        owners = {str(n.get("owner")) for n in body.get("notices", [])}
        return ", ".join(sorted(owners)), pairs
    if message["kind"] == "email":
        to = ", ".join(r.get("address", "") for r in body.get("recipients", {}).get("to", []))
        return f"to {to}: {body.get('content', {}).get('subject', '')}", [("", u) for u in dict.fromkeys(found)]
    return "", [("", u) for u in dict.fromkeys(found)]


def render_page(messages: list[dict[str, Any]]) -> str:
    """devhost's page of the recorded messages: when, kind, for whom, and the links they carried."""
    from html import escape

    rows = []
    for m in reversed(messages):
        who, pairs = _summary(m)
        link_items = "".join(
            f"<li>{escape(name)} <a href='{escape(url)}'>{escape(url.rsplit('/', 1)[-1][:24])}...</a></li>"
            for name, url in pairs
        )
        rows.append(
            f"<tr><td>{escape(m['at'])}</td><td>{escape(m['kind'])}</td><td>{escape(m['path'])}</td>"
            f"<td>{escape(who)}</td><td><ul>{link_items}</ul></td>"
            f"<td><details><summary>body</summary><pre>{escape(json.dumps(m['body'], indent=1))}</pre>"
            "</details></td></tr>"
        )
    table = (
        "<table border=1 cellpadding=4 cellspacing=0><tr><th>At</th><th>Kind</th><th>Path</th><th>For</th>"
        f"<th>Links</th><th>Body</th></tr>{''.join(rows)}</table>"
        if rows
        else "<p>Nothing was sent yet.</p>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>devhost: notifications</title></head><body>"
        f"<h1>Notifications the app sent ({len(messages)})</h1>"
        "<p>Recorded by devhost's notification stand-in (DEVHOST_NOTIFY_SINK); newest first. "
        "JSON: /devhost/notifications.json</p>"
        f"{table}</body></html>"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    standin: NotifySink

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, answer = self.standin.handle(self.command, parts.path, parse_qs(parts.query), headers, body)
        with self.standin._lock:
            self.standin.requests.append((self.command, parts.path, status))
        payload = json.dumps(answer).encode() if not isinstance(answer, str) else answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815

    def handle(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("notify-sink: " + format, *args)
