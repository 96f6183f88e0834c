"""Starts and stops Azurite's blob service (npm package `azurite`) as a child process of devhost or a test.

What survives devhost dying, even by SIGKILL: Azurite keeps blob bytes on disk as they are written, but its
metadata (which blobs exist, their blocks and eTags) in a LokiJS database it saves every 5 s and when it shuts
down. So Azurite must always shut down, not be killed:
- it gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), and `azurite_signals.js` keeps the further copies of
  that signal (one per devhost thread) from killing it while it saves;
- it runs in its own session, so a signal to devhost's process group (`kill -9 %1`, `kill -9 -- -PGID`) does not
  reach it;
- it holds a lock on its data directory until it has exited, so a devhost started right after a crash waits for
  the old Azurite to finish saving instead of loading older metadata (and then overwriting the save).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

APP_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "devstoreaccount1"
LOCK_NAME = ".devhost-azurite.lock"
SIGNALS_PRELOAD = Path(__file__).resolve().parent / "azurite_signals.js"
# What Node and Azurite read from the environment; nothing else of devhost's (the app's settings may be large:
# a value over 128 KiB cannot be passed to any program at all).
_ENV_NAMES = {"PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT"}
_ENV_PREFIXES = ("LC_", "NODE_", "AZURITE_", "SSL_CERT_")
# Azurite's well-known development key (public, documented by Microsoft); not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def connection_string(host: str, port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT_NAME};"
    )


def azurite_environment(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The part of `environ` Azurite needs."""
    return {k: v for k, v in environ.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}


def _die_with_parent() -> None:
    # Linux: the kernel sends SIGTERM to Azurite if devhost dies, even by SIGKILL: no orphan node process.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Azurite:
    """One Azurite blob service on `host:port`, data kept under `location` (survives restarts)."""

    def __init__(self, location: Path, host: str = "127.0.0.1", port: int = 10000) -> None:
        self.location = location
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.port)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    def _command(self) -> list[str]:
        script = APP_ROOT / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
        if not script.exists():
            raise RuntimeError(
                f"Azurite is not installed ({script} is missing): run `npm ci` in {APP_ROOT} (make run does)"
            )
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is required to run Azurite: `node` is not on PATH")
        return [
            node,
            "--require",
            str(SIGNALS_PRELOAD),  # a repeated SIGTERM must not cut Azurite's shutdown short
            str(script),
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]

    def _lock_location(self, timeout: float) -> int:
        """An exclusive lock on the data directory, waiting for an Azurite that still holds it to exit."""
        self.location.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.location / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RuntimeError(
                        f"another Azurite still uses {self.location} after {timeout:.0f} s (a devhost running on "
                        "the same data directory?); stop it or choose another --data-dir"
                    ) from None
                if not waiting:
                    log.info("waiting for the Azurite of a previous devhost to save its data in %s", self.location)
                    waiting = True
                time.sleep(0.1)

    def start(self, timeout: float = 30.0) -> Azurite:
        lock_fd = self._lock_location(timeout)
        if port_open(self.host, self.port):
            os.close(lock_fd)
            raise RuntimeError(
                f"port {self.host}:{self.port} is already in use; stop what listens there "
                "or choose another port (devhost --azurite-port, or --no-azurite to use a running one)"
            )
        self._lock_fd = lock_fd
        # Not a pipe to devhost: once devhost is gone a write to it would fail (EPIPE) and end Azurite's shutdown
        # before it saved its metadata.
        errors = self.location / "azurite-errors.log"
        logged_before = errors.stat().st_size if errors.exists() else 0
        with errors.open("ab") as error_log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=error_log,
                env=azurite_environment(os.environ),
                pass_fds=(lock_fd,),  # Azurite holds the lock until it exits, whatever becomes of devhost
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._proc.poll() is not None:
                err = errors.read_bytes()[logged_before:][-4000:].decode(errors="replace")
                code = self._proc.returncode
                self.stop()
                raise RuntimeError(f"Azurite exited with code {code}: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not listen on {self.host}:{self.port} within {timeout:.0f} s")
            time.sleep(0.05)
        log.info("Azurite blob service on %s (data in %s)", self.blob_endpoint, self.location)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Azurite:
        return self.start() if not self.running else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
