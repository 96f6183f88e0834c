"""`scoring_burst`: worker memory under a burst of uploads (issue 12): 40 files (~129 MB in all) uploaded at
once, then a ~300 MB file, scored by devhost with one worker per core; reports each worker's peak RSS."""

from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.core import Goal, Result
from benchmarks.hosts import Context, app_functions, devhost, peak_rss_mib, reset_peak, worker_pids
from benchmarks.scoring import (
    INPUT,
    MEMORY_GOAL_MIB,
    OUTPUT,
    SUBSCRIPTIONS,
    _delete,
    _ensure_containers,
    _instance_status,
    _service,
    _upload,
    score_through_devhost,
)
from benchmarks.scoring_data import InputFile, generate, size_label
from tests.devhost_runner import RunningHost

log = logging.getLogger(__name__)

BURST_FILES = 40
BURST_BYTES = 129 * 10**6  # in all: 40 files of about 3.2 MB
LARGE_BYTES = 300 * 10**6


def _wait_all(host: RunningHost, names: dict[str, tuple[str, InputFile]], timeout: float) -> float:
    """Seconds until every input's predictions are committed with its row count; raises on a failed run."""
    from shared.scoring_events import scoring_instance_id

    service = _service(host.storage_connection_string)
    started = time.perf_counter()
    pending = dict(names)
    next_status = started + 5.0
    while pending:
        for name in list(pending):
            output = service.get_blob_client(OUTPUT, name)
            if output.exists():
                rows = int(output.get_blob_properties().metadata.get("rows", -1))
                if rows != pending[name][1].rows:
                    raise RuntimeError(f"predictions/{name} holds {rows} rows, the input has {pending[name][1].rows}")
                del pending[name]
        now = time.perf_counter()
        if pending and now - started > timeout:
            raise RuntimeError(f"{len(pending)} files not scored within {timeout:.0f} s\n{host.log_text()[-3000:]}")
        if pending and now > next_status:
            for name, (etag, _) in pending.items():
                status = _instance_status(host, scoring_instance_id("devstoreaccount1", INPUT, name, etag))
                if status and status.get("runtimeStatus") in {"Failed", "Terminated"}:
                    raise RuntimeError(f"scoring of {name} ended {status['runtimeStatus']}: {status.get('output')}")
            next_status = now + 5.0
        time.sleep(0.2)
    return time.perf_counter() - started


def run(ctx: Context) -> Result:
    from shared import settings

    cores = os.cpu_count() or 1
    files, burst_bytes, large_bytes = (
        (10, 10 * 10**6, 30 * 10**6)
        if ctx.quick
        else (
            BURST_FILES,
            BURST_BYTES,
            LARGE_BYTES,
        )
    )
    result = Result(
        "scoring_burst",
        "Worker memory under a burst of uploads",
        f"{files} generated CSVs (`id,height,name,email`, {size_label(burst_bytes)} in all) are uploaded to "
        f"`incoming` at once (8 uploads in parallel), then one of {size_label(large_bytes)}; devhost runs one "
        "worker process per core and scores them all. Worker peak memory is VmHWM of each devhost worker "
        "process, reset after a warm-up file and before the burst. *Burst time* runs from the first upload to the "
        "last committed predictions CSV.",
    )
    functions = app_functions()
    if "on_blob_created" not in functions or "scoring_orchestrator" not in functions:
        result.notes.append("the scoring functions are not registered: nothing was measured")
        return result
    parameters: dict[str, Any] = {
        "files in the burst": files,
        "burst size": size_label(burst_bytes),
        "large file": size_label(large_bytes),
        "worker processes": cores,
        "SCORING_CHUNK_BYTES": settings.SCORING_CHUNK_BYTES.get({}),
        "SCORING_PARALLEL_CHUNKS": settings.SCORING_PARALLEL_CHUNKS.get({}),
    }
    budget = settings.ALL_SETTINGS.get("SCORING_WORKER_MEMORY_MB")
    if budget is not None:
        parameters["SCORING_WORKER_MEMORY_MB"] = budget.get({})
    result.parameters = parameters
    small = generate(burst_bytes // files)
    large = generate(large_bytes)
    with devhost(ctx, "scoring-burst", {"DEVHOST_EVENTGRID_SUBSCRIPTIONS": SUBSCRIPTIONS}, workers=cores) as host:
        service = _service(host.storage_connection_string)
        _ensure_containers(service, INPUT, OUTPUT)
        chunk = int(parameters["SCORING_CHUNK_BYTES"])
        warm = generate(int(chunk * cores * 1.05), ctx.work_dir)
        score_through_devhost(host, warm, f"warmup-{uuid.uuid4().hex[:8]}.csv", 300)
        pids = worker_pids(host)
        for pid in pids:
            reset_peak(pid)
        tag = uuid.uuid4().hex[:6]
        sources = {f"burst-{tag}-{i:02d}.csv": small for i in range(files)}
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            etags = dict(zip(sources, pool.map(lambda n: _upload(service, INPUT, n, sources[n]), sources), strict=True))
        large_name = f"burst-{tag}-large.csv"
        etags[large_name] = _upload(service, INPUT, large_name, large)
        sources[large_name] = large
        uploaded = time.perf_counter() - started
        _wait_all(host, {n: (etags[n], sources[n]) for n in sources}, 600 + large_bytes / 1e6)
        total = time.perf_counter() - started
        peaks = [p for p in (peak_rss_mib(pid) for pid in pids) if p is not None]
        log.info("burst: uploads %.1f s, all scored after %.1f s, worker peaks %s MiB", uploaded, total, peaks)
        for name in sources:
            _delete(service, INPUT, name)
            _delete(service, OUTPUT, name)
    peak = result.measure("burst_worker_peak", "worker peak RSS (max over workers)", "MiB")
    peak.samples = [max(peaks)] if peaks else []
    for i, value in enumerate(peaks):
        result.measure(f"burst_worker_{i}_peak", f"worker {i + 1} peak RSS", "MiB").samples = [value]
    result.measure("burst_seconds", "burst time (first upload to last predictions CSV)", "s").samples = [total]
    result.measure("burst_upload_seconds", "uploads", "s").samples = [uploaded]
    result.raw = {"worker_peaks_mib": peaks, "seconds": total, "upload_seconds": uploaded}
    result.goals = [
        Goal(
            f"worker peak memory under {MEMORY_GOAL_MIB:.0f} MiB in the burst",
            "burst_worker_peak",
            "<",
            MEMORY_GOAL_MIB,
        )
    ]
    return result
