"""Loopback stand-in of App Service's managed-identity token endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER).

`DefaultAzureCredential` reaches it through ManagedIdentityCredential unchanged; it issues opaque fake tokens
for any resource, which the other stand-ins accept (`is_valid`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devhost.standins.loopback import BackgroundServer

log = logging.getLogger(__name__)

TOKEN_PATH = "/msi/token"
TOKEN_LIFETIME_SECONDS = 3600


class IdentityStandin:
    """`GET {endpoint}?api-version=2019-08-01&resource=...` with `X-IDENTITY-HEADER` -> a bearer token."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.header_secret = secrets.token_hex(16)
        self._host = host
        self._port = port
        self._issued: dict[str, str] = {}  # token -> resource
        self._lock = threading.Lock()
        self.requests = 0
        self._http = BackgroundServer("identity-standin")
        self.endpoint = ""

    def env(self) -> dict[str, str]:
        """The settings App Service gives an app with a managed identity."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header_secret}

    def is_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._issued

    def issue(self, resource: str) -> dict[str, Any]:
        token = "fake-mi-" + secrets.token_urlsafe(24)
        with self._lock:
            self._issued[token] = resource
            self.requests += 1
        return {
            "access_token": token,
            "expires_on": str(int(time.time()) + TOKEN_LIFETIME_SECONDS),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-00000000cafe",
        }

    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            identity = standin

        port = self._http.start(Handler, self._host, self._port)
        self.endpoint = f"http://{self._host}:{port}{TOKEN_PATH}"
        log.info("managed-identity stand-in on %s", self.endpoint)
        return self.endpoint

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> IdentityStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    identity: IdentityStandin

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        resource = (query.get("resource") or [""])[0]
        if parts.path != TOKEN_PATH:
            self._answer(404, {"error": "not_found", "error_description": f"no such path {parts.path}"})
        elif self.headers.get("X-IDENTITY-HEADER") != self.identity.header_secret:
            self._answer(401, {"error": "unauthorized", "error_description": "missing or wrong X-IDENTITY-HEADER"})
        elif not resource or not query.get("api-version"):
            self._answer(
                400,
                {"error": "invalid_request", "error_description": "resource and api-version are required"},
            )
        else:
            self._answer(200, self.identity.issue(resource))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("identity-standin: " + format, *args)
