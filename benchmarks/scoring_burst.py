"""`scoring_burst`: worker memory under a burst of uploads (issue 12): 40 files (~129 MB in all) uploaded at
once, then a ~300 MB file, scored by devhost with one worker per core; reports each worker's peak RSS.

devhost runs with the app's default settings; SCORING_WORKER_MEMORY_MB set in the harness's environment is
passed on (to see how the budget moves the peak)."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.core import Goal, Result
from benchmarks.hosts import Context, app_functions, devhost, peak_rss_mib, reset_peak
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
from tests.helpers.processes import worker_pids

log = logging.getLogger(__name__)

BURST_FILES = 40
BURST_BYTES = 129 * 10**6  # in all: 40 files of about 3.2 MB
LARGE_BYTES = 300 * 10**6
REPEATS = 3  # bursts one after another on the same workers: what the first left resident counts for the next


def _wait_all(host: RunningHost, names: dict[str, tuple[str, InputFile]], timeout: float) -> float:
    """Seconds until every input's predictions are committed with its row count; raises on a failed run."""
    from shared.scoring.events import scoring_instance_id

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


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Sampler:
    """VmRSS of the workers every 100 ms, to tell when the peak came (the burst or the large file)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, list[float | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.perf_counter() - self._started, [_rss_mib(p) for p in self.pids]))

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _burst(
    host: RunningHost, pids: list[int], files: int, small: InputFile, large: InputFile, large_bytes: int
) -> dict[str, Any]:
    """One burst: `files` copies of `small` uploaded at once, then `large`; the workers' RSS around it."""
    service = _service(host.storage_connection_string)
    base = [p for p in (_rss_mib(pid) for pid in pids) if p is not None]
    for pid in pids:
        reset_peak(pid)
    tag = uuid.uuid4().hex[:6]
    sources = {f"burst-{tag}-{i:02d}.csv": small for i in range(files)}
    with _Sampler(pids) as sampler:
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
    for name in sources:
        _delete(service, INPUT, name)
        _delete(service, OUTPUT, name)
    return {
        "worker_peaks_mib": peaks,
        "worker_rss_before_mib": base,
        "seconds": total,
        "upload_seconds": uploaded,
        # Every second (of the 100 ms samples): enough to see when the peak came, small enough to keep.
        "rss_samples": [(round(t, 1), [round(v) if v else None for v in vs]) for t, vs in sampler.samples[::10]],
    }


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
        "worker process per core and scores them all; the burst is repeated on the same workers. Worker peak "
        "memory is VmHWM of each devhost worker process, reset after a warm-up file and before each burst (one "
        "sample per burst: the larger of the workers' peaks). *Burst time* runs from the first upload to the last "
        "committed predictions CSV.",
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
        parameters["SCORING_WORKER_MEMORY_MB"] = budget.get(os.environ)
    result.parameters = parameters
    small = generate(burst_bytes // files)
    large = generate(large_bytes)
    values = {"DEVHOST_EVENTGRID_SUBSCRIPTIONS": SUBSCRIPTIONS}
    if os.environ.get("SCORING_WORKER_MEMORY_MB"):
        values["SCORING_WORKER_MEMORY_MB"] = os.environ["SCORING_WORKER_MEMORY_MB"]
    repeats = 1 if ctx.quick else REPEATS
    parameters["repetitions (same workers)"] = repeats
    bursts: list[dict[str, Any]] = []
    with devhost(ctx, "scoring-burst", values, workers=cores) as host:
        service = _service(host.storage_connection_string)
        _ensure_containers(service, INPUT, OUTPUT)
        chunk = int(parameters["SCORING_CHUNK_BYTES"])
        warm = generate(int(chunk * cores * 1.05), ctx.work_dir)
        score_through_devhost(host, warm, f"warmup-{uuid.uuid4().hex[:8]}.csv", 300)
        pids = worker_pids(host)
        for rep in range(repeats):
            bursts.append(_burst(host, pids, files, small, large, large_bytes))
            log.info(
                "burst %s: uploads %.1f s, all scored after %.1f s, worker RSS before %s MiB, peaks %s MiB",
                rep + 1,
                bursts[-1]["upload_seconds"],
                bursts[-1]["seconds"],
                [round(b) for b in bursts[-1]["worker_rss_before_mib"]],
                [round(p) for p in bursts[-1]["worker_peaks_mib"]],
            )
    peak = result.measure("burst_worker_peak", "worker peak RSS (max over workers)", "MiB")
    peak.samples = [max(b["worker_peaks_mib"]) for b in bursts if b["worker_peaks_mib"]]
    result.measure("burst_seconds", "burst time (first upload to last predictions CSV)", "s").samples = [
        b["seconds"] for b in bursts
    ]
    result.measure("burst_upload_seconds", "uploads", "s").samples = [b["upload_seconds"] for b in bursts]
    result.measure("burst_worker_base", "worker RSS before the burst, max over workers", "MiB").samples = [
        max(b["worker_rss_before_mib"]) for b in bursts if b["worker_rss_before_mib"]
    ]
    result.raw = {"bursts": bursts}
    result.goals = [
        Goal(
            f"worker peak memory under {MEMORY_GOAL_MIB:.0f} MiB in the burst (worst run)",
            "burst_worker_peak",
            "<",
            MEMORY_GOAL_MIB,
            stat="max",
        )
    ]
    return result
