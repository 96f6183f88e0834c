"""`python -m benchmarks.scoring_scale [--gb 5] [--chunk-mib 1]`: one large file scored on devhost, and how big its
orchestrations grew: the largest history and the largest single Durable message of the run (issue 20's bound: no
history above 1 MB, no message above 256 KB), read through the Durable HTTP API (`showHistory`,
`showHistoryOutput`, `showInput`) of every orchestration the run started.

Not part of `make bench` (a 5 GB file takes minutes and about 3x its size of disk); docs/scaling.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.scoring import INPUT, OUTPUT, SUBSCRIPTIONS, _ensure_containers, _service, score_through_devhost
from benchmarks.scoring_data import generate, size_label
from tests.devhost_runner import start_devhost
from tests.helpers.durable_sizes import DURABLE, HISTORY_BOUND, MESSAGE_BOUND, measure_run

log = logging.getLogger(__name__)


def run(size: int, chunk_bytes: int, work_dir: Path, workers: int | None, keep_log: Path | None) -> dict[str, Any]:
    source = generate(size)
    data = Path(tempfile.mkdtemp(prefix="scoring-scale-", dir=work_dir))
    settings = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        "SCORING_CHUNK_BYTES": str(chunk_bytes),
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": SUBSCRIPTIONS,
    }
    host = start_devhost(data, settings, workers=workers, timeout=120)
    try:
        _ensure_containers(_service(host.storage_connection_string), INPUT, OUTPUT)
        name = f"scale-{size}.csv"
        upload_s, processing_s, rows = score_through_devhost(host, source, name, timeout=3 * 3600)
        listed = host.request("GET", f"{DURABLE}/instances", params={"instanceIdPrefix": "score-"}).json()
        [run_id] = [i["instanceId"] for i in listed if i["name"] == "scoring_orchestrator"]  # the only run
        sizes = measure_run(host, run_id)
        chunks = host.request("GET", f"{DURABLE}/instances/{run_id}").json()["output"]["chunks"]
    finally:
        host.stop()
        if keep_log is not None:
            shutil.copyfile(host.log_path, keep_log)
        shutil.rmtree(data, ignore_errors=True)
    largest_history = max(sizes, key=lambda s: s.history_bytes)
    largest_message = max(sizes, key=lambda s: s.largest_message_bytes)
    return {
        "size": size_label(size),
        "bytes": source.size,
        "rows": rows,
        "chunk_bytes": chunk_bytes,
        "chunks": chunks,
        "workers": workers or os.cpu_count(),
        "upload_seconds": round(upload_s, 1),
        "processing_seconds": round(processing_s, 1),
        "orchestrations": len(sizes),
        "run_history": asdict(next(s for s in sizes if s.instance_id == run_id)),
        "largest_history": asdict(largest_history),
        "largest_message": asdict(largest_message),
        "within_bounds": largest_history.history_bytes <= HISTORY_BOUND
        and largest_message.largest_message_bytes <= MESSAGE_BOUND,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring_scale", description=__doc__)
    parser.add_argument("--gb", type=float, default=5.0, help="input size in GB (10^9 bytes; default 5)")
    parser.add_argument("--chunk-mib", type=float, default=1.0, help="SCORING_CHUNK_BYTES in MiB (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="devhost worker processes (default: cores)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="devhost's data")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy devhost's log here before cleaning up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING)
    started = time.perf_counter()
    size, chunk_bytes = int(args.gb * 10**9), int(args.chunk_mib * 1024 * 1024)
    figures = run(size, chunk_bytes, args.work_dir, args.workers, args.keep_log)
    figures["harness_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, indent=2))
    return 0 if figures["within_bounds"] else 1


if __name__ == "__main__":
    sys.exit(main())
