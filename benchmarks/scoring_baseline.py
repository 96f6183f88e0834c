"""The scoring baselines, one fresh process each: download -> read_csv -> predict -> write_csv -> upload.

`python -m benchmarks.scoring_baseline --engine polars|pandas ...` prints one JSON line with its timings and peak
memory. The model and the engine are loaded before the clock starts, as they are in a warm worker.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

BLOCK_BYTES = 32 * 1024 * 1024  # Azurite moves large blobs faster in 32 MiB blocks than in 4 MiB ones


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: imports and model included); ru_maxrss would carry the parent's over fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def score(engine: str, connection_string: str, container: str, name: str, out_container: str) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    from shared.scoring.model import load_model

    model = load_model()
    column = model.card.prediction_column
    if engine == "polars":
        import polars as pl
    else:
        import pandas as pd
    service = BlobServiceClient.from_connection_string(
        connection_string, max_block_size=BLOCK_BYTES, max_single_put_size=BLOCK_BYTES
    )
    target = service.get_container_client(out_container)
    if not target.exists():
        target.create_container()

    started = time.perf_counter()
    data = service.get_blob_client(container, name).download_blob(max_concurrency=2).readall()
    downloaded = time.perf_counter()
    if engine == "polars":
        frame = pl.read_csv(io.BytesIO(data))
        predictions = model.predict({f: frame[f].to_numpy() for f in model.card.feature_names})
        buffer = io.BytesIO()
        frame.with_columns(pl.Series(column, predictions)).write_csv(buffer)
        payload = buffer.getvalue()
        rows = frame.height
    else:
        table = pd.read_csv(io.BytesIO(data))
        predictions = model.predict({f: table[f].to_numpy() for f in model.card.feature_names})
        table[column] = predictions
        payload = table.to_csv(index=False).encode("utf-8")
        rows = len(table)
    del data
    computed = time.perf_counter()
    target.get_blob_client(name).upload_blob(payload, overwrite=True, max_concurrency=2)
    finished = time.perf_counter()
    return {
        "engine": engine,
        "rows": rows,
        "seconds": finished - started,
        "download_seconds": downloaded - started,
        "compute_seconds": computed - downloaded,
        "upload_seconds": finished - computed,
        "output_bytes": len(payload),
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring_baseline", description=__doc__)
    parser.add_argument("--engine", choices=["polars", "pandas"], required=True)
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out-container", required=True)
    args = parser.parse_args(argv)
    out = score(args.engine, args.connection_string, args.container, args.name, args.out_container)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
