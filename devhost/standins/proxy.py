"""A loopback HTTPS forward proxy that routes Azure service host names to the stand-ins.

The app's clients keep their real URLs (`https://myvault.vault.azure.net`) and every check of the SDKs (the Key
Vault challenge's resource domain, TLS host names) stays on: devhost sets `HTTPS_PROXY` for the app, and this
proxy tunnels `CONNECT <name>.vault.azure.net:443` to the Key Vault stand-in, whose certificate covers that name.
So the app needs no local-only setting to be pointed at a stand-in. Host names with no route are refused (502):
nothing leaves the machine through it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from http.server import BaseHTTPRequestHandler

from devhost.standins.loopback import BackgroundServer

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class ForwardProxy:
    """`routes` maps a host-name suffix (".vault.azure.net") to a loopback port; CONNECT only (HTTPS)."""

    def __init__(self, routes: dict[str, int] | None = None) -> None:
        self.routes: dict[str, int] = dict(routes or {})
        self.refused: list[str] = []
        self._http = BackgroundServer("forward-proxy")

    def route(self, suffix: str, port: int) -> None:
        self.routes[suffix.lower()] = port

    def target(self, host: str) -> int | None:
        host = host.lower().rstrip(".")
        # The most specific route wins (a route for one vault beside the one for every vault).
        matches = [suffix for suffix in self.routes if host == suffix.lstrip(".") or host.endswith(suffix)]
        return self.routes[max(matches, key=len)] if matches else None

    @property
    def url(self) -> str:
        if self._http.port is None:
            raise RuntimeError("the forward proxy is not started")
        return f"http://127.0.0.1:{self._http.port}"

    def env(self, existing_no_proxy: str = "") -> dict[str, str]:
        """The variables that send a process's HTTPS through this proxy, loopback excepted (Azurite, ARM, identity).

        Both spellings: requests reads either, gRPC (durabletask) only the lower-case ones.
        """
        names = [n for n in existing_no_proxy.split(",") if n.strip()]
        no_proxy = ",".join(dict.fromkeys([*names, *LOOPBACK_NAMES]))
        return {"HTTPS_PROXY": self.url, "https_proxy": self.url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}

    def start(self) -> ForwardProxy:
        proxy = self

        class Handler(_Handler):
            forward = proxy

        self._http.start(Handler)
        log.info("forward proxy on %s for %s", self.url, ", ".join(sorted(self.routes)) or "nothing")
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    forward: ForwardProxy

    def do_CONNECT(self) -> None:
        host, _, _port = self.path.rpartition(":")
        port = self.forward.target(host)
        if port is None:
            self.forward.refused.append(host)
            self.send_error(502, f"no stand-in serves {host}")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as err:
            self.send_error(502, f"the stand-in for {host} does not answer: {err}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True  # the socket now belongs to the tunnel, not to HTTP
        self._splice(self.connection, upstream)

    def _refuse_plain(self) -> None:
        self.send_error(405, "only CONNECT (HTTPS) is proxied")

    do_GET = _refuse_plain  # noqa: N815
    do_POST = _refuse_plain  # noqa: N815

    @staticmethod
    def _splice(client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        with upstream:
            sockets = [client, upstream]
            while True:
                readable, _, failed = select.select(sockets, [], sockets, 30)
                if failed or not readable:
                    return
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    other = upstream if sock is client else client
                    try:
                        other.sendall(data)
                    except OSError:
                        return

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("forward-proxy: " + format, *args)
