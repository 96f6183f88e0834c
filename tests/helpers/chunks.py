"""Scoring a CSV in memory the way the orchestration does (plan, score each chunk, realign, join), and reading an
errors CSV as a person does: shared by the chunk scoring and bad-row tests."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

import numpy as np

from shared.scoring.chunk_bytes import ScoredChunk, score_chunk_bytes
from shared.scoring.csv_chunks import ChunkRange, plan_chunks, realign
from shared.scoring.errors_csv import shift_errors

FEATURES = ("height",)


def predict(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    return 0.5 * cols["height"] + 3.0


def expected_prediction(height: float) -> str:
    return repr(0.5 * height + 3.0)


ErrorRow = tuple[int, int, str, str, str]  # line, last_line, column, problem, value


def error_rows(errors_csv: bytes) -> list[ErrorRow]:
    """The errors CSV's rows (after its header, when it has one) as a person's CSV reader sees them."""
    rows = list(csv.reader(io.StringIO(errors_csv.decode(), newline="")))
    if rows and rows[0] == ["line", "last_line", "column", "problem", "value"]:
        rows = rows[1:]
    return [(int(a), int(b), c, d, e) for a, b, c, d, e in rows]


def per_line(errors: list[ErrorRow]) -> list[tuple[int, str, str]]:
    """(line, column, problem) of every bad line: what must not depend on how the file was chunked."""
    return [(n, column, problem) for line, last, column, problem, _ in errors for n in range(line, last + 1)]


def score_in_memory(data: bytes, chunk_bytes: int) -> tuple[bytes, list[ErrorRow], int]:
    """Plan, score every chunk, realign if needed, and join: what the orchestration does, without blobs."""

    def read(start: int, end: int) -> bytes:
        return data[start:end]

    header, chunks = plan_chunks(read, len(data), chunk_bytes, "incoming/x.csv")

    def run(chunk_list: list[ChunkRange]) -> list[ScoredChunk]:
        return [
            score_chunk_bytes(
                data[c.start : c.end],
                header=header,
                first=c.start == 0,
                features=FEATURES,
                prediction_column="predicted_weight",
                predict=predict,
                source="incoming/x.csv",
                offset=c.start,
            )
            for c in chunk_list
        ]

    scored = run(chunks)
    if any(s.misaligned for s in scored):
        chunks = realign(read, len(data), chunks, [s.quote_parity for s in scored])
        scored = run(chunks)
    assert not any(s.misaligned for s in scored)
    errors: list[ErrorRow] = []
    lines_before = 0
    for s in scored:
        if s.errors_csv:
            errors += error_rows(shift_errors(s.errors_csv, lines_before))
        assert s.bad_rows == len(per_line(error_rows(s.errors_csv)))
        lines_before += s.lines
    return b"".join(s.output for s in scored), errors, sum(s.rows for s in scored)


def score_whole(data: bytes) -> tuple[bytes, list[ErrorRow], int]:
    return score_in_memory(data, len(data) + 1)
