"""`scoring`: upload a CSV to `incoming` on devhost + Azurite and time until `predictions/<name>` is committed,
with 1 and with N worker processes, against single-process polars (a) and pandas (b) baselines in the same run."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from benchmarks.core import APP_ROOT, Goal, Plot, Result, Series
from benchmarks.hosts import Context, app_functions, devhost, peak_rss_mib, reset_peak
from benchmarks.scoring_baseline import BLOCK_BYTES
from benchmarks.scoring_data import InputFile, generate, size_label
from tests.devhost_runner import RunningHost
from tests.helpers.processes import worker_pids
from tests.helpers.storage import ensure_container, service_client

log = logging.getLogger(__name__)

INPUT, OUTPUT = "incoming", "predictions"
BASELINE_IN, BASELINE_OUT = "baseline-in", "baseline-out"
SUBSCRIPTIONS = json.dumps(
    [
        {
            "function": "on_blob_created",
            "subjectBeginsWith": f"/blobServices/default/containers/{INPUT}/",
            "subjectEndsWith": ".csv",
        }
    ]
)
MEMORY_GOAL_MIB = 600.0
LINEARITY_LIMIT = 1.25


@dataclass
class Plan:
    sizes: list[int]
    repeats: dict[int, int]  # size -> repetitions of the N-worker devhost runs and of baseline (a)
    pandas_repeats: dict[int, int]
    worker_counts: list[int]
    single_worker_repeats: dict[int, int] = field(default_factory=dict)  # default: `repeats`


def plan_for(quick: bool) -> Plan:
    cores = os.cpu_count() or 1
    workers = sorted({1, cores})
    if quick:
        sizes = [5 * 10**6, 20 * 10**6]
        return Plan(sizes, dict.fromkeys(sizes, 2), dict.fromkeys(sizes, 1), workers)
    sizes = [10 * 10**6, 100 * 10**6, 10**9]
    # pandas needs minutes for 1 GB (its to_csv dominates): one run there, stated on the page.
    # So does one worker (1 GB on one core): one run there too. The whole `make bench` must fit in 15 minutes.
    return Plan(
        sizes,
        {sizes[0]: 3, sizes[1]: 3, sizes[2]: 2},
        {sizes[0]: 3, sizes[1]: 2, sizes[2]: 1},
        workers,
        {sizes[0]: 3, sizes[1]: 3, sizes[2]: 1},
    )


@dataclass
class RunRecord:
    size: int
    config: str
    repetition: int
    upload_seconds: float
    processing_seconds: float
    end_to_end_seconds: float
    worker_peak_mib: list[float] = field(default_factory=list)
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _service(connection_string: str) -> Any:
    return service_client(connection_string, max_block_size=BLOCK_BYTES, max_single_put_size=BLOCK_BYTES)


def _ensure_containers(service: Any, *names: str) -> None:
    for name in names:
        ensure_container(service, name)


def _upload(service: Any, container: str, name: str, source: InputFile) -> str:
    with source.path.open("rb") as stream:
        info = service.get_blob_client(container, name).upload_blob(
            stream, length=source.size, overwrite=True, max_concurrency=2
        )
    return str(info["etag"]).strip('"')


def _instance_status(host: RunningHost, instance_id: str) -> dict[str, Any] | None:
    response = requests.get(
        f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}",
        headers={"x-functions-key": host.key},
        timeout=10,
    )
    if response.status_code == 404:
        return None
    data: dict[str, Any] = response.json()
    return data


def score_through_devhost(host: RunningHost, source: InputFile, name: str, timeout: float) -> tuple[float, float, int]:
    """(upload seconds, seconds from committed upload to committed predictions, rows) of one file."""
    from shared.scoring.events import scoring_instance_id

    service = _service(host.storage_connection_string)
    output = service.get_blob_client(OUTPUT, name)
    started = time.perf_counter()
    etag = _upload(service, INPUT, name, source)
    uploaded = time.perf_counter()
    instance_id = scoring_instance_id("devstoreaccount1", INPUT, name, etag)
    deadline = uploaded + timeout
    next_status = uploaded + 2.0
    while not output.exists():
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"no predictions for {name} within {timeout:.0f} s\n{host.log_text()[-3000:]}")
        if now > next_status:
            # A failed run never commits: stop waiting and say why.
            status = _instance_status(host, instance_id)
            if status and status.get("runtimeStatus") in {"Failed", "Terminated"}:
                raise RuntimeError(f"scoring of {name} ended {status['runtimeStatus']}: {status.get('output')}")
            next_status = now + 2.0
        time.sleep(0.05)
    committed = time.perf_counter()
    properties = output.get_blob_properties()
    rows = int(properties.metadata.get("rows", -1))
    if rows != source.rows:
        raise RuntimeError(f"predictions/{name} holds {rows} rows, the input has {source.rows}")
    return uploaded - started, committed - uploaded, rows


def run_baseline(engine: str, connection_string: str, name: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scoring_baseline",
            "--engine",
            engine,
            "--connection-string",
            connection_string,
            "--container",
            BASELINE_IN,
            "--name",
            name,
            "--out-container",
            BASELINE_OUT,
        ],
        cwd=APP_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{engine} baseline failed ({done.returncode}): {done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _delete(service: Any, container: str, name: str) -> None:
    # Keeps Azurite's disk small and the relay's container listing short between runs.
    from azure.core.exceptions import ResourceNotFoundError

    try:
        service.get_blob_client(container, name).delete_blob()
    except ResourceNotFoundError:
        pass


def _config_label(workers: int) -> str:
    return f"devhost, {workers} worker" + ("s" if workers > 1 else "")


def run(ctx: Context) -> Result:
    from shared import settings

    plan = plan_for(ctx.quick)
    cores = os.cpu_count() or 1
    result = Result(
        "scoring",
        "Batch scoring throughput",
        "A generated CSV (`id,height,name,email`, about 50 bytes a row) is uploaded to `incoming` on devhost's "
        "Azurite; devhost's relay delivers the BlobCreated event, `scoring_orchestrator` scores byte-range chunks "
        "in worker processes and commits `predictions/<name>`. *Processing* is the time from the committed upload "
        "to the committed predictions (polled every 50 ms); *end to end* adds the upload. Baselines, same run, "
        "same Azurite, fresh process each, model loaded before the clock: (a) download -> polars `read_csv` -> "
        "predict with the same model -> `write_csv` -> upload; (b) the same with pandas. Worker peak memory is "
        "VmHWM of each devhost worker process, reset before each run.",
    )
    functions = app_functions()
    if "on_blob_created" not in functions or "scoring_orchestrator" not in functions:
        result.notes.append(
            "`on_blob_created`/`scoring_orchestrator` are not registered by function_app yet: "
            "only the baselines were measured."
        )
        plan.worker_counts = []
    env: dict[str, str] = {}
    result.parameters = {
        "sizes": [size_label(s) for s in plan.sizes],
        "repetitions (devhost N workers and baseline a)": [plan.repeats[s] for s in plan.sizes],
        "repetitions (devhost 1 worker)": [plan.single_worker_repeats.get(s, plan.repeats[s]) for s in plan.sizes],
        "repetitions of baseline b (pandas)": [plan.pandas_repeats[s] for s in plan.sizes],
        "worker processes": plan.worker_counts,
        "SCORING_CHUNK_BYTES": settings.SCORING_CHUNK_BYTES.get(env),
        "SCORING_PARALLEL_CHUNKS": settings.SCORING_PARALLEL_CHUNKS.get(env),
        "SCORING_WAVE_SIZE": settings.SCORING_WAVE_SIZE.get(env),
        "upload block size (bytes)": BLOCK_BYTES,
    }
    inputs = {size: generate(size) for size in plan.sizes}
    records: list[RunRecord] = []
    baselines: list[dict[str, Any]] = []

    def measure_baselines(host: RunningHost, size: int) -> None:
        source = inputs[size]
        service = _service(host.storage_connection_string)
        _ensure_containers(service, BASELINE_IN, BASELINE_OUT)
        name = f"baseline-{size}.csv"
        _upload(service, BASELINE_IN, name, source)
        for engine, repeats in (("polars", plan.repeats[size]), ("pandas", plan.pandas_repeats[size])):
            for rep in range(repeats):
                out = run_baseline(engine, host.storage_connection_string, name)
                if out["rows"] != source.rows:
                    raise RuntimeError(f"{engine} baseline read {out['rows']} rows of {source.rows}")
                baselines.append({"size": size, "repetition": rep, **out})
                log.info("%s %s: %.2f s (peak %.0f MiB)", size_label(size), engine, out["seconds"], out["peak_rss_mib"])
                _delete(service, BASELINE_OUT, name)
        _delete(service, BASELINE_IN, name)

    baselines_done = False
    for workers in plan.worker_counts or [0]:
        settings_values = {"DEVHOST_EVENTGRID_SUBSCRIPTIONS": SUBSCRIPTIONS} if workers else {}
        with devhost(ctx, f"scoring-{workers}w", settings_values, workers=workers or None) as host:
            service = _service(host.storage_connection_string)
            if workers:
                _ensure_containers(service, INPUT, OUTPUT)
                # Warm-up (not measured): each worker loads the model and polars on its first chunk, so the
                # warm-up file has a chunk for every worker.
                chunk = int(result.parameters["SCORING_CHUNK_BYTES"])
                warm = generate(int(chunk * workers * 1.05), ctx.work_dir)
                score_through_devhost(host, warm, f"warmup-{uuid.uuid4().hex[:8]}.csv", 300)
            for size in plan.sizes:
                if not baselines_done and workers == max(plan.worker_counts or [0]):
                    measure_baselines(host, size)
                if not workers:
                    continue
                repeats = (
                    plan.single_worker_repeats.get(size, plan.repeats[size]) if workers == 1 else plan.repeats[size]
                )
                for rep in range(repeats):
                    pids = worker_pids(host)
                    for pid in pids:
                        reset_peak(pid)
                    name = f"bench-{size_label(size).replace(' ', '')}-{workers}w-{rep}-{uuid.uuid4().hex[:6]}.csv"
                    timeout = 120 + size / 2e6
                    upload_s, processing_s, rows = score_through_devhost(host, inputs[size], name, timeout)
                    peaks = [p for p in (peak_rss_mib(pid) for pid in pids) if p is not None]
                    record = RunRecord(
                        size, _config_label(workers), rep, upload_s, processing_s, upload_s + processing_s, peaks, rows
                    )
                    records.append(record)
                    log.info(
                        "%s %s: upload %.2f s, processing %.2f s, worker peaks %s MiB",
                        size_label(size),
                        record.config,
                        upload_s,
                        processing_s,
                        [round(p) for p in peaks],
                    )
                    _delete(service, INPUT, name)
                    _delete(service, OUTPUT, name)
            baselines_done = baselines_done or workers == max(plan.worker_counts or [0])
    if plan.worker_counts:
        records.extend(_measure_with_telemetry(ctx, plan, inputs, result))
    summarize_scoring(result, plan, inputs, records, baselines, cores)
    return result


TELEMETRY_CONFIG = "telemetry on"


def _measure_with_telemetry(ctx: Context, plan: Plan, inputs: dict[int, InputFile], result: Result) -> list[RunRecord]:
    """The middle size again with OpenTelemetry spans recorded and exported by every devhost process
    (DEVHOST_SPAN_FILE: the SDK tracer provider plus a synchronous JSON-lines exporter)."""
    size = plan.sizes[len(plan.sizes) // 2]
    workers = max(plan.worker_counts)
    spans = ctx.work_dir / f"spans-{uuid.uuid4().hex[:6]}.jsonl"
    values = {"DEVHOST_EVENTGRID_SUBSCRIPTIONS": SUBSCRIPTIONS, "DEVHOST_SPAN_FILE": str(spans)}
    records: list[RunRecord] = []
    with devhost(ctx, "scoring-telemetry", values, workers=workers) as host:
        service = _service(host.storage_connection_string)
        _ensure_containers(service, INPUT, OUTPUT)
        chunk = int(result.parameters["SCORING_CHUNK_BYTES"])
        warm = generate(int(chunk * workers * 1.05), ctx.work_dir)
        score_through_devhost(host, warm, f"warmup-{uuid.uuid4().hex[:8]}.csv", 300)
        for rep in range(plan.repeats[size]):
            name = f"bench-telemetry-{rep}-{uuid.uuid4().hex[:6]}.csv"
            upload_s, processing_s, rows = score_through_devhost(host, inputs[size], name, 120 + size / 2e6)
            records.append(
                RunRecord(size, TELEMETRY_CONFIG, rep, upload_s, processing_s, upload_s + processing_s, [], rows)
            )
            log.info("%s with telemetry: processing %.2f s", size_label(size), processing_s)
            _delete(service, INPUT, name)
            _delete(service, OUTPUT, name)
    result.parameters["telemetry measured at"] = size_label(size)
    result.parameters["spans exported"] = sum(1 for _ in spans.open()) if spans.exists() else 0
    return records


def summarize_scoring(
    result: Result,
    plan: Plan,
    inputs: dict[int, InputFile],
    records: list[RunRecord],
    baselines: list[dict[str, Any]],
    cores: int,
) -> None:
    """Measures, goals and plots from the raw runs (kept in `result.raw`)."""
    result.raw = {
        "runs": [r.to_dict() for r in records],
        "baselines": baselines,
        "inputs": {str(s): {"bytes": f.size, "rows": f.rows} for s, f in inputs.items()},
    }
    top = max(plan.worker_counts) if plan.worker_counts else 0
    for size in plan.sizes:
        label = size_label(size)

        def samples(engine: str, key: str, size: int = size) -> list[float]:
            return [float(b[key]) for b in baselines if b["size"] == size and b["engine"] == engine]

        polars = result.measure(f"a_{size}", f"{label}: (a) polars, one process", "s", baseline_only=True)
        polars.samples = samples("polars", "seconds")
        peak_a = result.measure(f"a_peak_{size}", f"{label}: (a) polars process peak RSS", "MiB", baseline_only=True)
        peak_a.samples = samples("polars", "peak_rss_mib")
        configs = [(w, _config_label(w)) for w in sorted(plan.worker_counts, reverse=True)]
        for workers, config in configs:
            processing = result.measure(f"w{workers}_{size}", f"{label}: {config}, processing", "s", f"a_{size}")
            processing.samples = [r.processing_seconds for r in records if r.size == size and r.config == config]
        telemetry = [r.processing_seconds for r in records if r.size == size and r.config == TELEMETRY_CONFIG]
        if telemetry and top:
            on = result.measure(
                f"telemetry_{size}", f"{label}: {_config_label(top)}, telemetry on, processing", "s", f"w{top}_{size}"
            )
            on.samples = telemetry
        if top:
            e2e = result.measure(f"w{top}_e2e_{size}", f"{label}: {_config_label(top)}, end to end (with upload)", "s")
            e2e.samples = [r.end_to_end_seconds for r in records if r.size == size and r.config == _config_label(top)]
        pandas = result.measure(f"b_{size}", f"{label}: (b) pandas, one process", "s", baseline=f"a_{size}")
        pandas.samples = samples("pandas", "seconds")
        fast = result.by_key().get(f"w{top}_{size}")
        if fast is not None and fast.samples and pandas.samples:
            speedup = result.measure(
                f"speedup_b_{size}", f"{label}: speed-up of {_config_label(top)} over (b) pandas (medians)", "x"
            )
            speedup.samples = [statistics.median(pandas.samples) / (fast.median or float("nan"))]
        for workers, config in configs:
            peak = result.measure(
                f"w{workers}_peak_{size}", f"{label}: {config}, worker peak RSS", "MiB", f"a_peak_{size}"
            )
            peak.samples = [
                max(r.worker_peak_mib) for r in records if r.size == size and r.config == config and r.worker_peak_mib
            ]
    if top and plan.worker_counts:
        largest, middle = plan.sizes[-1], plan.sizes[-2]
        by_key = result.by_key()
        fast_large, fast_mid = by_key[f"w{top}_{largest}"], by_key[f"w{top}_{middle}"]
        if fast_large.samples and fast_mid.samples and by_key[f"a_{largest}"].samples:
            ratio = result.measure(
                "ratio_a_largest",
                f"{size_label(largest)}: {_config_label(top)} time / (a) polars time (medians)",
                "x",
            )
            ratio.samples = [(fast_large.median or 0) / (by_key[f"a_{largest}"].median or float("nan"))]
            growth = result.measure(
                "growth",
                f"seconds per MB at {size_label(largest)} / at {size_label(middle)} ({_config_label(top)}, medians)",
                "x",
            )
            per_mb_large = (fast_large.median or 0) / inputs[largest].size
            per_mb_mid = (fast_mid.median or 0) / inputs[middle].size
            growth.samples = [per_mb_large / per_mb_mid]
        every_peak = result.measure("worker_peak_all", "worker peak RSS, every run and size", "MiB")
        every_peak.samples = [max(r.worker_peak_mib) for r in records if r.worker_peak_mib]
        result.goals = [
            Goal(
                f"{size_label(largest)}: no slower than (a) polars in one process (time ratio <= 1)",
                "ratio_a_largest",
                "<=",
                1.0,
            ),
            Goal(f"{size_label(largest)}: at least 8x faster than (b) pandas", f"speedup_b_{largest}", ">=", 8.0),
            Goal(
                f"worker peak memory under {MEMORY_GOAL_MIB:.0f} MiB (worst run)",
                "worker_peak_all",
                "<",
                MEMORY_GOAL_MIB,
                stat="max",
            ),
            Goal(
                f"linear cost growth: seconds per MB at {size_label(largest)} within {LINEARITY_LIMIT}x of "
                f"{size_label(middle)}",
                "growth",
                "<=",
                LINEARITY_LIMIT,
            ),
        ]
    plot_series: list[Series] = []
    for workers in sorted(plan.worker_counts, reverse=True):
        points = [
            (inputs[s].size / 1e6, inputs[s].size / 1e6 / m.median)
            for s in plan.sizes
            if (m := result.by_key()[f"w{workers}_{s}"]).median
        ]
        plot_series.append(Series(_config_label(workers) + " (processing)", points))
    for key, label in (("a", "(a) polars, one process"), ("b", "(b) pandas, one process")):
        points = [
            (inputs[s].size / 1e6, inputs[s].size / 1e6 / m.median)
            for s in plan.sizes
            if (m := result.by_key()[f"{key}_{s}"]).median
        ]
        plot_series.append(Series(label, points, dashed=True))
    result.plots = [
        Plot(
            "scoring_throughput.svg",
            f"Scoring throughput vs input size ({cores} cores)",
            "input size (MB, log)",
            "MB/s (median)",
            plot_series,
            log_x=True,
        )
    ]
    if plan.worker_counts:
        result.notes.append(
            "Throughput (MB/s) by size and configuration is plotted below; raw per-run timings (upload, processing, "
            "worker peaks) and the baselines' download/compute/upload split are in `benchmarks/results/scoring.json`."
        )
    for size in plan.sizes:
        parts = [b for b in baselines if b["size"] == size and b["engine"] == "polars"]
        if parts:
            result.notes.append(
                f"{size_label(size)}, (a) polars split (medians): download "
                f"{statistics.median(b['download_seconds'] for b in parts):.2f} s, read+predict+write "
                f"{statistics.median(b['compute_seconds'] for b in parts):.2f} s, upload "
                f"{statistics.median(b['upload_seconds'] for b in parts):.2f} s."
            )
