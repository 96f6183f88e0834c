"""What every stand-in shares: a threaded HTTP(S) server on loopback, served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devhost.standins.tls import LocalTls


class BackgroundServer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(
        self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0, tls: LocalTls | None = None
    ) -> int:
        """Serve `handler` on host:port (0 = any free port), over TLS when given; returns the port."""
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        if tls is not None:
            # The handshake then runs in each connection's thread, not in the accept loop.
            server.socket = tls.server_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return int(server.server_address[1])

    @property
    def port(self) -> int | None:
        return int(self._server.server_address[1]) if self._server is not None else None

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
