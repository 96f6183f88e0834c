"""`python -m benchmarks.scoring_rows [--rows N] [--runs K]`: what a bad row costs next to a good one.

Scores one chunk of N good rows (`id,height` = `i,150.5`) and one of N bad rows (`1,abc`, as in issue 12) with
the shipped model, in this process (the chunk activity's own work, without blob I/O), K times each, and prints
the medians, their ratio and the size of the errors CSV next to the input's. Not part of `make bench`: it is
the before/after measure of the bad-row path, cheap enough to run by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from shared.scoring.csv_chunks import CsvHeader


def make_chunks(rows: int) -> tuple[bytes, bytes]:
    good = b"id,height\n" + b"".join(f"{i},{150 + i % 50}.5\n".encode() for i in range(rows))
    bad = b"id,height\n" + b"1,abc\n" * rows
    return good, bad


def _errors_bytes(scored: Any) -> int:
    csv_bytes = getattr(scored, "errors_csv", None)
    if csv_bytes is not None:
        return len(csv_bytes)
    # The code before issue 12 (to measure "before"): a list of (line, reason), written as `line,reason` rows.
    from shared.scoring import chunk_scoring

    format_errors = vars(chunk_scoring)["format_errors"]
    return len(format_errors(scored.errors, header=True))


def measure(rows: int, runs: int) -> dict[str, Any]:
    from shared.scoring.chunk_bytes import score_chunk_bytes
    from shared.scoring.model import load_model

    model = load_model()
    header = CsvHeader(columns=("id", "height"), line_ending="\n", bom_length=0, header_length=len(b"id,height\n"))
    good, bad = make_chunks(rows)

    def score(data: bytes) -> tuple[float, Any]:
        started = time.perf_counter()
        scored = score_chunk_bytes(
            data,
            header=header,
            first=True,
            features=("height",),
            prediction_column="predicted_weight",
            predict=model.predict,
            source="incoming/bench.csv",
        )
        return time.perf_counter() - started, scored

    score(good)  # warm-up: polars' and the model's first calls
    times: dict[str, list[float]] = {"good": [], "bad": []}
    errors_bytes = 0
    for _ in range(runs):
        for kind, data in (("good", good), ("bad", bad)):
            seconds, scored = score(data)
            times[kind].append(seconds)
            if kind == "bad":
                assert scored.bad_rows == rows, scored.bad_rows
                errors_bytes = _errors_bytes(scored)
    good_s, bad_s = statistics.median(times["good"]), statistics.median(times["bad"])
    return {
        "rows": rows,
        "runs": runs,
        "good_median_s": round(good_s, 4),
        "bad_median_s": round(bad_s, 4),
        "bad_over_good": round(bad_s / good_s, 2),
        "bad_input_bytes": len(bad),
        "errors_csv_bytes": errors_bytes,
        "errors_over_input": round(errors_bytes / len(bad), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring_rows", description=__doc__)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.rows, args.runs)))


if __name__ == "__main__":
    main()
