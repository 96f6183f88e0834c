"""What the benchmarks share: the run context, devhost start-up, and memory readings of its worker processes
(found with `tests.helpers.processes.worker_pids`)."""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.devhost_runner import RunningHost, start_devhost

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Options of one harness run, handed to every benchmark."""

    quick: bool
    work_dir: Path

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
        return path


@functools.cache
def app_functions() -> frozenset[str]:
    """Names of the functions function_app registers now (features still being written may be absent).

    Cached: the library's get_functions() refuses to run twice on one app (it sees every name as a duplicate).
    """
    import function_app

    return frozenset(f.get_function_name() for f in function_app.app.get_functions())


@contextlib.contextmanager
def devhost(
    ctx: Context,
    name: str,
    settings: dict[str, str],
    workers: int | None = None,
    **kwargs: Any,
) -> Iterator[RunningHost]:
    """A devhost of the real function_app in a scratch directory, stopped (and its data removed) afterwards."""
    data = ctx.scratch(name)
    base = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        # The nightly timer must not fire during a benchmark.
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        **settings,
    }
    host = start_devhost(data, base, workers=workers, timeout=120, **kwargs)
    try:
        yield host
    finally:
        host.stop()
        shutil.rmtree(data, ignore_errors=True)


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set since start or since the last `reset_peak`."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/<pid>/clear_refs), so each run has its own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def reset_write_buckets(host: RunningHost, subscriptions: list[str], *, limited: bool) -> None:
    """The app's shared copy of each subscription's ARM write bucket (reports/arm/...), set as the stand-in's own
    buckets are between runs: full, and marked as an endpoint without limits when the stand-in does not throttle
    (what the app learns from the first answers on a real, unchanging endpoint)."""
    import json
    import time

    from shared.arm_budget import WRITE_CAPACITY, shared_bucket_blob
    from tests.helpers.storage import blob_service, ensure_container

    container = ensure_container(blob_service(host), "reports")
    now = time.time()
    for subscription in subscriptions:
        state: dict[str, float] = {"tokens": WRITE_CAPACITY, "at": now}
        if not limited:
            state["unlimited_at"] = now
        container.upload_blob(shared_bucket_blob(subscription), json.dumps(state), overwrite=True)
