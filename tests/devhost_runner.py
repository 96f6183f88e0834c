"""Starts `python -m devhost` as a real subprocess for tests and benchmarks, and talks to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from devhost.azurite import free_port

APP_ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"Completed", "Failed", "Terminated"}


@dataclass
class RunningHost:
    proc: subprocess.Popen[bytes]
    base_url: str
    key: str
    azurite_port: int
    data_dir: Path
    log_path: Path
    settings: dict[str, str]

    @property
    def storage_connection_string(self) -> str:
        from devhost.azurite import connection_string

        return connection_string("127.0.0.1", self.azurite_port)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _stored_keys(self, section: str) -> dict[str, str]:
        # devhost keeps its function and system keys in the data dir, like the host's file secrets repository.
        stored = json.loads((self.data_dir / "state" / "secrets" / "host.json").read_text())
        return {item["name"]: item["value"] for item in stored[section]}

    @property
    def function_key(self) -> str:
        """The default function key: opens the app's `function`-level HTTP functions, not the webhooks."""
        return self._stored_keys("functionKeys")["default"]

    def system_key(self, extension: str) -> str:
        """`durabletask_extension` or `eventgrid_extension`: opens that extension's webhook only."""
        return self._stored_keys("systemKeys")[extension]

    def request(
        self, method: str, path: str, *, key: bool = True, timeout: float = 30, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key:
            headers.setdefault("x-functions-key", self.key)
        url = path if path.startswith("http") else self.base_url + path
        return requests.request(method, url, headers=headers, timeout=timeout, **kwargs)

    def wait_for_completion(self, status_url: str, timeout: float = 60.0, interval: float = 0.1) -> dict[str, Any]:
        """Follows a statusQueryGetUri (as a user would with curl) until the instance ends."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = requests.get(status_url, timeout=10)
            last = response.json()
            if response.status_code == 200 and last.get("runtimeStatus") in TERMINAL:
                return last
            assert response.status_code == 202, f"status answered {response.status_code}: {response.text}"
            time.sleep(interval)
        raise AssertionError(
            f"instance did not finish within {timeout} s; last status {last}\n{self.log_text()[-3000:]}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_devhost(
    data_dir: Path,
    settings: dict[str, str],
    *,
    script_root: Path = APP_ROOT,
    workers: int | None = None,
    azurite: bool = True,
    azurite_port: int | None = None,
    port: int | None = None,
    key: str = "test-key-123",
    timeout: float = 90.0,
    env: dict[str, str] | None = None,
    own_process_group: bool = False,
) -> RunningHost:
    """`own_process_group`: devhost leads a process group of its own, as a shell's job does (`kill -9 %1` signals
    the whole group)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    azurite_port = azurite_port or free_port()
    # The app hands devhost its Key Vault resolver and telemetry set-up (local.settings.sample.json does the same).
    hooks = {"DEVHOST_APP_HOOKS": "local_hooks:devhost_hooks"} if script_root == APP_ROOT else {}
    values = {"DEVHOST_KEY": key, **hooks, **settings}
    settings_file = data_dir / "settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    log_path = data_dir / "devhost.log"
    command = [
        sys.executable,
        "-m",
        "devhost",
        "--script-root",
        str(script_root),
        "--settings",
        str(settings_file),
        "--port",
        str(port),
        "--azurite-port",
        str(azurite_port),
        "--data-dir",
        str(data_dir / "state"),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    if not azurite:
        command.append("--no-azurite")
    # AZUREML_CURRENT_CLOUD: azure-ai-ml writes the name of the cloud an in-process MLClient registered (a unit test's
    # stand-in) into os.environ; a devhost inheriting it would look for that cloud and fail every ARM call.
    inherited = set(values) | {"AZUREML_CURRENT_CLOUD"}
    child_env = {k: v for k, v in os.environ.items() if k not in inherited}
    child_env.update(env or {})
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=APP_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=own_process_group,
        )
    host = RunningHost(proc, f"http://127.0.0.1:{port}", key, azurite_port, data_dir, log_path, values)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"devhost exited with {proc.returncode}:\n{host.log_text()[-4000:]}")
        try:
            if host.request("GET", "/admin/host/status", timeout=2).status_code == 200:
                return host
        except requests.RequestException:
            pass
        time.sleep(0.1)
    host.stop(signal.SIGKILL)
    raise RuntimeError(f"devhost did not answer within {timeout} s:\n{host.log_text()[-4000:]}")
