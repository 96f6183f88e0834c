"""The local Functions host: settings, Azurite, stand-ins, the Durable engine and its workers, HTTP, timers, relay."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from devhost import logsafe
from devhost.azurite import Azurite, connection_string, free_port
from devhost.child_env import exec_environment
from devhost.config import (
    APP_ROOT,
    ConfigError,
    HostJson,
    HostOptions,
    load_local_settings,
    missing_sample_settings,
)
from devhost.durable_api import DurableApi
from devhost.entity_api import EntityApi
from devhost.hooks import AppHooks, load_app_hooks
from devhost.index import AppIndex, FunctionSpec, index_app, load_app, script_file
from devhost.keys import DURABLETASK_EXTENSION, EVENTGRID_EXTENSION, HostKeys
from devhost.relay import BlobRelay, parse_subscriptions
from devhost.server import STARTED_INSTANCES_HEADER, FunctionFailed, HostServer, Invoker
from devhost.settings import (
    DEVHOST_EVENTGRID_SUBSCRIPTIONS,
    DEVHOST_GRPC_MAX_MESSAGE_MB,
    DEVHOST_KEY,
    FUNCTIONS_WORKER_PROCESS_COUNT,
)
from devhost.timer_monitor import ScheduleMonitor, ScheduleStatus, uses_monitor
from devhost.timers import Schedule, ScheduleError, occurrences_log, parse_schedule, resolve_setting_expression

log = logging.getLogger("devhost")

DEV_STORAGE = "UseDevelopmentStorage=true"


class _PlatformSettings(Mapping[str, str]):
    """App settings as the platform hands them to binding expressions: Key Vault references resolved
    (App Service does this before the host reads `%NAME%`; devhost asks the app's hook)."""

    def __init__(self, hooks: AppHooks):
        self.hooks = hooks

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if value.lstrip().startswith("@Microsoft.KeyVault("):
            resolve = self.hooks.resolve_setting_reference
            if resolve is None:
                raise ScheduleError(
                    f"setting {name} is a Key Vault reference, and DEVHOST_APP_HOOKS gives devhost no "
                    "resolve_setting_reference hook to resolve it with"
                )
            return resolve(name, value.strip(), os.environ)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


class WorkerPool:
    """FUNCTIONS_WORKER_PROCESS_COUNT worker processes running orchestrators and activities; restarts the dead."""

    def __init__(
        self,
        count: int,
        address: str,
        script_root: str,
        max_activities: int,
        max_orchestrations: int,
        state_dir: Path,
    ):
        self.count = count
        self.spill_file = state_dir / "worker-settings.json"
        self.address = address
        self.script_root = script_root
        self.max_activities = max_activities
        self.max_orchestrations = max_orchestrations
        self.processes: list[subprocess.Popen[str] | None] = [None] * count
        self._ready = [threading.Event() for _ in range(count)]
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def _spawn(self, slot: int) -> None:
        self._ready[slot].clear()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devhost.worker",
                "--address",
                self.address,
                "--script-root",
                self.script_root,
                "--max-activities",
                str(self.max_activities),
                "--max-orchestrations",
                str(self.max_orchestrations),
                "--name",
                f"worker{slot}",
            ],
            # No preexec_fn: forking a process whose gRPC threads are running is unsafe; the worker watches
            # its parent instead and exits when devhost is gone.
            cwd=str(APP_ROOT),
            env=exec_environment(os.environ, self.spill_file),  # settings too large for exec go in a file
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.processes[slot] = proc
        threading.Thread(target=self._forward, args=(slot, proc), daemon=True).start()

    def _forward(self, slot: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip().endswith("ready"):
                self._ready[slot].set()
            else:
                sys.stdout.write(logsafe.safe(line))  # what a worker prints bypasses its log formatter

    def start(self, timeout: float = 60.0) -> None:
        for slot in range(self.count):
            self._spawn(slot)
        deadline = time.monotonic() + timeout
        for slot, ready in enumerate(self._ready):
            while not ready.wait(0.05):
                proc = self.processes[slot]
                if proc is not None and proc.poll() is not None:
                    raise ConfigError(f"worker {slot} exited with code {proc.returncode} while starting (see above)")
                if time.monotonic() > deadline:
                    raise ConfigError(f"worker {slot} did not start within {timeout:.0f} s")
        self._watchdog = threading.Thread(target=self._watch, name="worker-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for slot, proc in enumerate(self.processes):
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    log.warning(
                        "worker %d (pid %d) exited with code %s; starting a new one",
                        slot,
                        proc.pid,
                        proc.returncode,
                    )
                    self._spawn(slot)

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()  # so it cannot start a worker after the ones below are stopped
        for proc in self.processes:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.spill_file.unlink(missing_ok=True)


class DevHost:
    """Everything `python -m devhost` runs, startable from a test or the command line."""

    def __init__(self, options: HostOptions):
        self.options = options
        self.key = ""  # the master key (DEVHOST_KEY)
        self.keys: HostKeys | None = None
        self.azurite: Azurite | None = None
        self.backend: Any = None
        self.grpc_client: Any = None
        self.workers: WorkerPool | None = None
        self.relay: BlobRelay | None = None
        self.index: AppIndex | None = None
        self.standins: list[Any] = []
        self._runner: web.AppRunner | None = None
        self._timer_tasks: list[asyncio.Task[None]] = []
        self.disabled_functions: dict[str, str] = {}  # name -> why (the host's "failed indexing" functions)
        self.hooks = AppHooks()
        self._session: ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        """How devhost reaches itself (relay, timers, the durable client): loopback when it listens everywhere."""
        host = "127.0.0.1" if self.options.host in {"0.0.0.0", "::", ""} else self.options.host
        return f"http://{host}:{self.options.port}"

    # --- start-up ---------------------------------------------------------------------------------------
    def _prepare_environment(self) -> None:
        opts = self.options
        settings_file = opts.settings_file or (opts.script_root / "local.settings.json")
        missing = missing_sample_settings(settings_file)  # before loading: what the file itself lacks
        applied = load_local_settings(settings_file)
        if missing:
            log.warning(
                "%s lacks settings that local.settings.sample.json has: %s (copy them over to use them)",
                settings_file.name,
                ", ".join(missing),
            )
        for name, value in opts.extra_env.items():
            os.environ[name] = value
        log.info("settings: %d values from %s", len(applied), settings_file)
        # Before anything starts: a wrong --script-root or a v1 app stops devhost here, naming the problem.
        script_file(opts.script_root)
        self.key = DEVHOST_KEY.get() or secrets.token_urlsafe(24)
        os.environ[DEVHOST_KEY.name] = self.key  # what processes started from here see
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        self.keys = HostKeys.load_or_create(self.key, opts.state_dir / "secrets" / "host.json")

        storage = connection_string("127.0.0.1", opts.azurite_port)  # Azurite listens on loopback
        if opts.azurite:
            self.azurite = Azurite(opts.state_dir / "azurite", port=opts.azurite_port).start()
            storage = self.azurite.connection_string
        # What `UseDevelopmentStorage=true` means, with the port devhost actually uses.
        for name, value in list(os.environ.items()):
            if value.strip() == DEV_STORAGE:
                os.environ[name] = storage
        os.environ.setdefault("AzureWebJobsStorage", storage)
        self._heads_up_settings()
        self._start_standins()

    def _heads_up_settings(self) -> None:
        """What App Service gives the heads-up's links: the app's host name (links are http here, so the base URL
        too), and a signing key, generated once and kept in the state folder so links survive a restart."""
        host = self.base_url.split("://", 1)[1]
        os.environ.setdefault("WEBSITE_HOSTNAME", host)
        os.environ.setdefault("NOTICE_LINK_BASE_URL", self.base_url)
        if os.environ.get("NOTICE_SIGNING_KEY", "").strip():
            return
        key_file = self.options.state_dir / "notice-signing-key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            key_file.chmod(0o600)
        key = key_file.read_text(encoding="utf-8").strip()
        logsafe.register_secret(key)
        os.environ["NOTICE_SIGNING_KEY"] = key

    def _start_standins(self) -> None:
        from devhost.standins_setup import start_standins

        self.standins = start_standins(os.environ, self.options.state_dir)

    def _host_keys(self) -> HostKeys:
        assert self.keys is not None, "keys are made with the environment, before anything serves"
        return self.keys

    def _start_durable(self, index: AppIndex, host_json: HostJson) -> tuple[DurableApi | None, EntityApi | None]:
        if not any(index.by_type(kind) for kind in ("orchestrationTrigger", "activityTrigger", "entityTrigger")):
            return None, None
        from durabletask.client import TaskHubGrpcClient

        from devhost.durable_catalog import DurableCatalog
        from devhost.durabletask_internals import channel_options
        from devhost.engine import DevhostBackend

        port = free_port()
        max_message = DEVHOST_GRPC_MAX_MESSAGE_MB.get() * 1024 * 1024
        self.backend = DevhostBackend(port, host_json.max_concurrent_activities, max_message)
        address = self.backend.start()
        engine_log = logging.getLogger("devhost.engine")
        engine_log.setLevel(logging.WARNING)
        self.grpc_client = TaskHubGrpcClient(
            host_address=address, logger=engine_log, channel_options=channel_options(max_message)
        )
        count = self.options.workers or FUNCTIONS_WORKER_PROCESS_COUNT.get() or os.cpu_count() or 1
        self.workers = WorkerPool(
            count,
            address,
            str(self.options.script_root),
            host_json.max_concurrent_activities,
            host_json.max_concurrent_orchestrations,
            self.options.state_dir,
        )
        self.workers.start()
        orchestrators = {spec.registered_name for spec in index.by_type("orchestrationTrigger")}
        system_key = self._host_keys().system[DURABLETASK_EXTENSION]
        durable = DurableApi(self.grpc_client, host_json.hub_name, orchestrators, system_key, host_json.default_version)
        return durable, EntityApi(self.grpc_client, DurableCatalog.build(index, host_json))

    async def start(self) -> None:
        started = time.perf_counter()
        self._loop = asyncio.get_running_loop()
        opts = self.options
        self._prepare_environment()
        host_json = HostJson.load(opts.script_root / "host.json")
        app = load_app(opts.script_root)
        self.hooks = load_app_hooks()
        from devhost.spans import install_span_file

        install_span_file(self.hooks)
        self.index = index = index_app(app)
        durable, entities = await asyncio.get_running_loop().run_in_executor(
            None, self._start_durable, index, host_json
        )
        rpc_token = secrets.token_hex(16)
        rpc_base = f"{self.base_url}/_rpc/{rpc_token}/"
        invoker = Invoker(str(opts.script_root), durable, rpc_base, host_json.function_timeout_seconds)
        keys = self._host_keys()
        self.server = HostServer(index, invoker, keys, host_json.route_prefix, durable, rpc_token, entities)
        from devhost.standins_setup import notify_sink

        self.server.notify_sink = notify_sink(self.standins)
        self._runner = web.AppRunner(self.server.application(), access_log=None, **self.server.runner_options())
        await self._runner.setup()
        await web.TCPSite(self._runner, opts.host, opts.port, backlog=1024).start()
        self._session = ClientSession(timeout=ClientTimeout(total=600))
        self._start_timers(index, invoker)
        self._start_relay(index)
        self._print_functions(index, host_json, time.perf_counter() - started)

    def _print_functions(self, index: AppIndex, host_json: HostJson, seconds: float) -> None:
        prefix = f"/{host_json.route_prefix}" if host_json.route_prefix else ""
        lines = ["", "Functions:", ""]
        for spec in index.functions:
            kind = spec.trigger_type
            if kind == "httpTrigger":
                assert spec.route is not None
                methods = ",".join(sorted(spec.methods)) or "ALL"
                lines.append(
                    f"        {spec.name}: [{methods}] {self.base_url}{prefix}/{spec.route.template}"
                    f"  ({spec.auth_level})"
                )
            elif kind == "eventGridTrigger":
                lines.append(
                    f"        {spec.name}: eventGridTrigger  {self.base_url}/runtime/webhooks/eventgrid"
                    f"?functionName={spec.name}"
                )
            elif kind == "timerTrigger":
                state = "  DISABLED (failed indexing)" if spec.name in self.disabled_functions else ""
                lines.append(f"        {spec.name}: timerTrigger ({spec.trigger.get('schedule')}){state}")
            else:
                lines.append(f"        {spec.name}: {kind}")
        lines.append("")
        if self.azurite:
            lines.append(f"Azurite blob service: {self.azurite.blob_endpoint} (data in {self.azurite.location})")
        if self.workers:
            lines.append(
                f"Durable Task engine: in-memory, {self.workers.count} worker process(es), "
                f"task hub {host_json.hub_name}"
            )
        for standin in self.standins:
            lines.append(f"Stand-in: {standin}")
        keys = self._host_keys()
        lines.append(f"Master key (DEVHOST_KEY, opens everything): {keys.master}")
        lines.append(f"Function key (default, opens /{host_json.route_prefix} functions): {keys.function}")
        for name, value in keys.system.items():
            lines.append(f"System key {name}: {value}")
        lines.append(f"Host started in {seconds:.2f} s; listening on {self.base_url}. Press Ctrl+C to stop.")
        print("\n".join(lines), flush=True)

    # --- timers -----------------------------------------------------------------------------------------
    def _start_timers(self, index: AppIndex, invoker: Invoker) -> None:
        now = datetime.now(UTC)
        refused: tuple[type[Exception], ...] = (ScheduleError, *self.hooks.error_types)
        for spec in index.by_type("timerTrigger"):
            written = str(spec.trigger.get("schedule", ""))
            # A schedule held in Key Vault stays out of the log (the host would print it): shown by its setting.
            secret = any(
                os.environ.get(name, "").lstrip().startswith("@Microsoft.KeyVault(")
                for name in re.findall(r"%([^%]+)%", written)
            )
            expression = written
            try:
                expression = resolve_setting_expression(written, _PlatformSettings(self.hooks))
                schedule = parse_schedule(expression)
            except refused as err:
                # The host disables just this function and runs the others.
                reason = str(err).replace(expression, written) if secret else str(err)
                log.error("Function 'Functions.%s' failed indexing and will be disabled. %s", spec.name, reason)
                self.disabled_functions[spec.name] = reason
                continue
            label = f"Cron: '{written}', from Key Vault" if secret else None
            log.info("%s", "\n".join(occurrences_log(spec.name, schedule, now, label=label)))
            self._timer_tasks.append(asyncio.create_task(self._run_timer(spec, schedule, invoker)))

    async def _run_timer(self, spec: FunctionSpec, schedule: Schedule, invoker: Invoker) -> None:
        try:
            await self._timer_loop(spec, schedule, invoker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer of %s stopped", spec.name)

    async def _timer_loop(self, spec: FunctionSpec, schedule: Schedule, invoker: Invoker) -> None:
        monitor = None
        if uses_monitor(spec.trigger, schedule, datetime.now(UTC)):
            monitor = ScheduleMonitor(self.options.state_dir / "timers", spec.name)
        status, past_due = self._initial_status(spec, schedule, monitor)
        # TimerListener.StartAsync: a past-due occurrence runs at once; else runOnStartup does.
        if past_due:
            log.info("Function '%s' is past due on startup. Executing now.", spec.name)
            status = await self._fire(spec, invoker, schedule, monitor, status, past_due=True, scheduled=None)
        elif spec.trigger.get("runOnStartup"):
            log.info("Function '%s' is configured to run on startup. Executing now.", spec.name)
            status = await self._fire(spec, invoker, schedule, monitor, status, past_due=False, scheduled=None)
        due = schedule.next_after(datetime.now(UTC))
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            late = (datetime.now(UTC) - due).total_seconds()
            status = await self._fire(spec, invoker, schedule, monitor, status, past_due=late > 1.0, scheduled=due)
            # Skip occurrences missed while the function ran, as the host's schedule monitor does.
            due = schedule.next_after(max(due, datetime.now(UTC)))

    @staticmethod
    def _initial_status(
        spec: FunctionSpec, schedule: Schedule, monitor: ScheduleMonitor | None
    ) -> tuple[ScheduleStatus | None, bool]:
        """The monitored status at start (logged as the host logs it) and whether an occurrence was missed."""
        if monitor is None:
            return None, False
        status, overdue = monitor.check_past_due(datetime.now(UTC), schedule)
        recorded = status.to_json()
        log.info(
            "Function '%s' initial status: Last='%s', Next='%s', LastUpdated='%s'",
            spec.name,
            recorded["Last"],
            recorded["Next"],
            recorded["LastUpdated"],
        )
        return status, bool(overdue)

    async def _fire(
        self,
        spec: FunctionSpec,
        invoker: Invoker,
        schedule: Schedule,
        monitor: ScheduleMonitor | None,
        status: ScheduleStatus | None,
        *,
        past_due: bool,
        scheduled: datetime | None,
    ) -> ScheduleStatus | None:
        """One invocation with the TimerRequest the worker builds (the schedule status only when monitored), then
        the monitor's bookkeeping."""
        from azure.functions.timer import TimerRequest

        invoked_at = datetime.now(UTC)
        shown = status.to_json() if monitor is not None and status is not None else None
        timer = TimerRequest(past_due=past_due, schedule_status=shown)
        try:
            await invoker.invoke(spec, timer, self.base_url, None)
        except FunctionFailed:
            pass  # logged by the invoker; the next occurrence still fires
        if monitor is None:
            return status
        return monitor.record_run(invoked_at, schedule, scheduled)

    # --- Event Grid relay -------------------------------------------------------------------------------
    def _start_relay(self, index: AppIndex) -> None:
        try:
            subscriptions = parse_subscriptions(DEVHOST_EVENTGRID_SUBSCRIPTIONS.get())
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if not subscriptions:
            return
        unknown = [s.function for s in subscriptions if index.get(s.function) is None]
        if unknown:
            raise ConfigError(f"DEVHOST_EVENTGRID_SUBSCRIPTIONS names unknown function(s): {', '.join(unknown)}")
        storage = os.environ["AzureWebJobsStorage"]
        ended = self._instances_ended if self.grpc_client is not None else None
        self.relay = BlobRelay(storage, subscriptions, self.options.state_dir, self._deliver_from_thread, ended)
        self.relay.start()

    def _instances_ended(self, instance_ids: Sequence[str]) -> bool:
        from devhost.durable_api import TERMINAL

        for instance_id in instance_ids:
            state = self.grpc_client.get_orchestration_state(instance_id, fetch_payloads=False)
            if state is not None and state.runtime_status not in TERMINAL:
                return False
        return True

    def _deliver_from_thread(self, function: str, event: dict[str, Any]) -> list[str] | None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._deliver(function, event), self._loop)
        return future.result()

    async def _deliver(self, function: str, event: dict[str, Any]) -> list[str] | None:
        """Posts one event as an Event Grid subscription does; the instances it started, or None if refused."""
        assert self._session is not None
        url = f"{self.base_url}/runtime/webhooks/eventgrid"
        params = {"functionName": function, "code": self._host_keys().system[EVENTGRID_EXTENSION]}
        headers = {"aeg-event-type": "Notification", "Content-Type": "application/json"}
        async with self._session.post(url, params=params, json=[event], headers=headers) as response:
            if response.status >= 300:
                log.warning(
                    "Event Grid delivery of %s to %s answered %d; will retry",
                    event["subject"],
                    function,
                    response.status,
                )
                return None
            started = json.loads(response.headers.get(STARTED_INSTANCES_HEADER) or "[]")
            return [str(instance_id) for instance_id in started]

    # --- shutdown ---------------------------------------------------------------------------------------
    async def stop(self) -> None:
        for task in self._timer_tasks:
            task.cancel()
        if self.relay:
            await asyncio.get_running_loop().run_in_executor(None, self.relay.stop)
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()
        await asyncio.get_running_loop().run_in_executor(None, self._stop_processes)

    def _stop_processes(self) -> None:
        if self.workers:
            self.workers.stop()
        if self.grpc_client is not None:
            self.grpc_client.close()
        if self.backend is not None:
            self.backend.stop()
        for standin in self.standins:
            standin.stop()
        if self.azurite:
            self.azurite.stop()


async def serve(options: HostOptions, on_ready: Callable[[DevHost], None] | None = None) -> None:
    host = DevHost(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
        if on_ready:
            on_ready(host)
        await stop.wait()
        print("Stopping devhost...", flush=True)
    finally:
        await host.stop()


__all__ = ["DevHost", "serve"]
