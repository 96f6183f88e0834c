"""Loopback HTTPS stand-in of the Key Vault secrets API, so the real SecretClient and its challenge flow run.

Serves `GET /secrets/{name}[/{version}]` with versions, answers unauthenticated requests with Key Vault's
bearer challenge, 404 for unknown secrets and 403 for secrets (or the whole vault) configured as forbidden.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from devhost.standins.loopback import BackgroundServer
from devhost.standins.tls import LocalTls

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
VAULT_RESOURCE = "https://vault.azure.net"


@dataclass
class _Version:
    version: str
    value: str
    created: int
    content_type: str | None = None


@dataclass
class KeyVaultStats:
    """What the stand-in was asked: authorized secret reads, challenges sent, bearer tokens seen."""

    secret_reads: int = 0
    challenges: int = 0
    tokens: list[str] = field(default_factory=list)


class KeyVaultStandIn:
    """One vault on https://127.0.0.1:{port}; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        tls: LocalTls,
        *,
        tenant_id: str = DEFAULT_TENANT,
        port: int = 0,
        token_validator: Callable[[str], bool] | None = None,
    ) -> None:
        """`token_validator` (e.g. IdentityStandin.is_valid) refuses unknown tokens; None accepts any."""
        self._tls = tls
        self._token_validator = token_validator
        self._tenant_id = tenant_id
        self._port = port
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}
        self._forbidden: set[str] = set()
        self._forbid_all = False
        self.stats = KeyVaultStats()
        self._http = BackgroundServer("keyvault-standin")

    # --- configuration ----------------------------------------------------------------------------
    def set_secret(self, name: str, value: str, *, content_type: str | None = None) -> str:
        """Add a new version of `name` (it becomes the latest) and return its version id."""
        version = uuid.uuid4().hex
        with self._lock:
            self._secrets.setdefault(name, []).append(_Version(version, value, int(time.time()), content_type))
        return version

    def forbid(self, name: str | None = None) -> None:
        """Answer 403 for reads of `name`, or of every secret when `name` is None."""
        with self._lock:
            if name is None:
                self._forbid_all = True
            else:
                self._forbidden.add(name)

    # --- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._http.port is None:
            raise RuntimeError("the Key Vault stand-in is not started")
        return f"https://127.0.0.1:{self._http.port}"

    def start(self) -> KeyVaultStandIn:
        standin = self

        class Handler(_Handler):
            vault = standin

        self._http.start(Handler, "127.0.0.1", self._port, self._tls)
        logger.info("Key Vault stand-in listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> KeyVaultStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling (called from server threads) --------------------------------------------
    def _handle_get(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
        token = _bearer_token(authorization)
        if token is not None and self._token_validator is not None and not self._token_validator(token):
            token = None  # Key Vault answers a bad token with the same challenge as a missing one
        if token is None:
            with self._lock:
                self.stats.challenges += 1
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self._tenant_id}", '
                f'resource="{VAULT_RESOURCE}"'
            )
            return (
                401,
                {"WWW-Authenticate": challenge},
                _error("Unauthorized", "AKV10000: Request is missing a Bearer."),
            )
        parts = [p for p in urlsplit(path).path.split("/") if p]
        if len(parts) not in (2, 3) or parts[0] != "secrets":
            return 400, {}, _error("BadParameter", f"Unsupported path {urlsplit(path).path}")
        name, version = parts[1], parts[2] if len(parts) == 3 else None
        with self._lock:
            self.stats.secret_reads += 1
            self.stats.tokens.append(token)
            if self._forbid_all or name in self._forbidden:
                return (
                    403,
                    {},
                    _error(
                        "Forbidden",
                        "Caller is not authorized to perform action on resource. "
                        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                        inner="ForbiddenByRbac",
                    ),
                )
            versions = self._secrets.get(name, [])
            found = versions[-1] if versions and version is None else None
            for candidate in versions:
                if candidate.version == version:
                    found = candidate
        if found is None:
            shown = f"{name}/{version}" if version else name
            return (
                404,
                {},
                _error(
                    "SecretNotFound",
                    f"A secret with (name/id) {shown} was not found in this key vault. If you recently "
                    "deleted this secret you may be able to recover it using the correct recovery command.",
                ),
            )
        body: dict[str, Any] = {
            "value": found.value,
            "id": f"{self.url}/secrets/{name}/{found.version}",
            "attributes": {
                "enabled": True,
                "created": found.created,
                "updated": found.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": {},
        }
        if found.content_type:
            body["contentType"] = found.content_type
        return 200, {}, body


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    vault: KeyVaultStandIn
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, headers, body = self.vault._handle_get(self.path, self.headers.get("Authorization"))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line carries secret names only, never values; keep it at DEBUG to stay quiet in tests.
        logger.debug("keyvault stand-in: " + format, *args)
