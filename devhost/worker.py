"""One worker process: imports the app and runs its orchestrators, activities and entities on the Durable Task engine.

devhost starts FUNCTIONS_WORKER_PROCESS_COUNT of these (`python -m devhost.worker`), each connected over gRPC to
the engine in the host process, so CPU-bound activities use every core as on the real Functions host.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

from devhost.activity_adapter import make_activity
from devhost.child_env import restore_spilled
from devhost.config import ConfigError, HostJson
from devhost.durable_adapter import execute_orchestrator
from devhost.durable_catalog import DurableCatalog
from devhost.durabletask_internals import EntityBatchRunner, EpisodeRunner, EpisodeWorker, pb
from devhost.entity_adapter import execute_entity_batch
from devhost.hooks import load_app_hooks
from devhost.index import AppIndex, AppLoadError, index_app, load_app
from devhost.logsafe import SafeFormatter
from devhost.settings import DEVHOST_GRPC_MAX_MESSAGE_MB
from devhost.spans import QUIET_LOGGERS, install_span_file

log = logging.getLogger("devhost.worker")


def _episode(catalog: DurableCatalog) -> EpisodeRunner:
    def run(req: pb.OrchestratorRequest) -> tuple[list[pb.OrchestratorAction], str | None]:
        return execute_orchestrator(catalog, req)

    return run


def _entity(catalog: DurableCatalog) -> EntityBatchRunner:
    def run(req: pb.EntityBatchRequest, infos: list[pb.OperationInfo]) -> pb.EntityBatchResult:
        return execute_entity_batch(catalog, req, infos)

    return run


def build_worker(
    index: AppIndex,
    address: str,
    max_activities: int,
    max_orchestrations: int,
    loop: asyncio.AbstractEventLoop | None,
    host_json: HostJson | None = None,
) -> TaskHubGrpcWorker:
    engine_log = logging.getLogger("devhost.engine")
    engine_log.setLevel(logging.WARNING)
    catalog = DurableCatalog.build(index, host_json)
    max_message = DEVHOST_GRPC_MAX_MESSAGE_MB.get() * 1024 * 1024
    # durabletask's worker with orchestrator episodes and entity batches run by df's own code (devhost's adapters).
    worker = EpisodeWorker(
        _episode(catalog),
        _entity(catalog),
        max_message,
        host_address=address,
        logger=engine_log,
        concurrency_options=ConcurrencyOptions(
            maximum_concurrent_activity_work_items=max_activities,
            maximum_concurrent_orchestration_work_items=max_orchestrations,
            # The default pool is cores + 4 threads: blocking activities would queue behind each other.
            maximum_thread_pool_workers=max_activities + max_orchestrations + 4,
        ),
    )
    for spec in index.by_type("activityTrigger"):
        worker.add_activity(make_activity(spec, loop, max_message))
    return worker


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="worker-event-loop", daemon=True).start()
    return loop


def main(argv: list[str] | None = None) -> int:
    restore_spilled()  # settings too large to pass through exec (devhost/child_env.py)
    parser = argparse.ArgumentParser(prog="python -m devhost.worker")
    parser.add_argument("--address", required=True, help="gRPC address of the Durable Task engine")
    parser.add_argument("--script-root", type=Path, required=True)
    parser.add_argument("--max-activities", type=int, default=10)
    parser.add_argument("--max-orchestrations", type=int, default=10)
    parser.add_argument("--name", default="worker")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(f"[%(asctime)s] {args.name} %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        index = index_app(load_app(args.script_root))
        host_json = HostJson.load(args.script_root / "host.json")
        install_span_file(load_app_hooks())
    except (AppLoadError, ConfigError) as err:
        log.error("%s", err)
        return 3
    loop = _start_loop()
    worker = build_worker(index, args.address, args.max_activities, args.max_orchestrations, loop, host_json)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    parent = os.getppid()

    def watch_parent() -> None:
        # devhost may die without stopping us (SIGKILL): leave no orphan worker behind.
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()  # type: ignore[no-untyped-call]
    print(f"{args.name} ready", flush=True)
    stop.wait()
    worker.stop()  # type: ignore[no-untyped-call]
    loop.call_soon_threadsafe(loop.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
