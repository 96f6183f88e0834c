"""Scoring one chunk's bytes in memory: the chunk's share of the predictions CSV and the rows of its errors CSV.

A chunk's output is its input bytes with `,<prediction>` inserted before each row's line ending (input text is
never re-serialized), so the chunks' outputs, concatenated in order, are the predictions CSV. Bad rows keep
their place with an empty prediction and are listed with chunk-relative line numbers (shared/scoring/errors_csv.py).
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import ScoringError
from shared.scoring import numbers
from shared.scoring.csv_chunks import CsvHeader
from shared.scoring.csv_rows import Rows, split_rows
from shared.scoring.error_document import header_hint
from shared.scoring.errors_csv import errors_csv

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

log = logging.getLogger(__name__)

Predict = Callable[[Mapping[str, "np.ndarray[Any, Any]"]], "np.ndarray[Any, Any]"]
_SEPARATOR_CANDIDATES = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01", "\x02", "\x03")


@dataclass
class ScoredChunk:
    """One chunk scored in memory: output bytes and bad rows with chunk-relative line numbers (1 = first)."""

    output: bytes
    errors_csv: bytes = b""  # rows of the errors CSV (no header), chunk-relative line numbers
    bad_rows: int = 0
    rows: int = 0
    lines: int = 0
    quote_parity: int = 0
    misaligned: bool = False


def check_columns(header: CsvHeader, features: Sequence[str], source: str, model_label: str) -> None:
    """ScoringError naming the first missing feature column, the model and the columns the file has."""
    missing = [f for f in features if f not in header.columns]
    if missing:
        what = f"column {missing[0]!r}" if len(missing) == 1 else "columns " + ", ".join(map(repr, missing))
        hint = header_hint(header.columns, missing)
        raise ScoringError(
            f"{source} lacks {what} required by model {model_label} (columns: {', '.join(header.columns)})"
            + (f"; {hint}" if hint else "")
        )


def csv_field(text: str) -> str:
    """`text` as one CSV field, quoted only when it must be."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def format_predictions(values: np.ndarray[Any, Any], valid: np.ndarray[Any, Any]) -> pl.Series:
    """Prediction text per row: repr(float) of each valid value (as real-time JSON prints), else ""."""
    import numpy as np
    import polars as pl

    text = pl.Series("p", values, dtype=pl.Float64).cast(pl.String)
    # polars prints |x| < 1e-4 positionally (0.00001), repr with an exponent (1e-05); elsewhere they agree.
    with np.errstate(invalid="ignore"):
        small = np.flatnonzero(valid & (np.abs(values) < 1e-4) & (values != 0))
    if len(small):
        text = text.scatter(small, [repr(float(v)) for v in values[small]])
    bad = np.flatnonzero(~valid)
    if len(bad):
        text = text.scatter(bad, "")
    return text


_UTF8_SLICE = 1 << 20


def _check_utf8(data: bytes, source: str, offset: int) -> None:
    # Decoded a slice at a time and thrown away: a whole-chunk str would double the chunk's memory.
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _UTF8_SLICE):
        pending = len(decoder.getstate()[0])  # bytes of a character split by the previous slice
        try:
            decoder.decode(view[start : start + _UTF8_SLICE], final=start + _UTF8_SLICE >= len(data))
        except UnicodeDecodeError as err:
            at = start - pending + err.start
            raise ScoringError(
                f"{source} is not UTF-8 text: byte 0x{data[at]:02x} at offset {offset + at} "
                "cannot be decoded (save the file as UTF-8)"
            ) from err


def score_chunk_bytes(
    data: bytes,
    *,
    header: CsvHeader,
    first: bool,
    features: Sequence[str],
    prediction_column: str,
    predict: Predict,
    source: str,
    offset: int = 0,
    model_label: str = "model",
) -> ScoredChunk:
    """Score the bytes of one chunk (chunk 0 holds BOM and header) into its share of the predictions CSV."""
    import numpy as np

    lines = data.count(b"\n")
    if data.count(b'"') & 1:
        return ScoredChunk(b"", lines=lines, quote_parity=1, misaligned=True)
    _check_utf8(data, source, offset)
    check_columns(header, features, source, model_label)
    head_out, body, first_line = _split_header(data, header, first, prediction_column)

    rows = split_rows(body)
    blank = rows.cends == rows.starts
    ncols = len(header.columns)
    ragged = (rows.fields != ncols) & ~blank
    col_index = {f: header.columns.index(f) for f in features}
    texts = _texts_fast(body, rows, blank, col_index, ncols)
    fast = texts is not None
    if texts is None:
        texts = _texts_slow(body, rows, blank, ragged, col_index)
    parsed = {f: numbers.parse_numbers(texts[f]) for f in features}
    predictions, valid, bad_prediction = _predict(parsed, ~blank & ~ragged, predict, model_label)

    pred_text = format_predictions(predictions, valid)
    bad = np.flatnonzero(~valid & ~blank)
    listed = b""
    if len(bad):
        listed = errors_csv(
            body,
            bad,
            rows=rows,
            ragged=ragged,
            bad_prediction=bad_prediction,
            parsed=parsed,
            features=features,
            ncols=ncols,
            first_line=first_line,
        )
    output = _assemble_fast(body, rows, pred_text) if fast else _assemble_slow(body, rows, blank, pred_text)
    return ScoredChunk(head_out + output, errors_csv=listed, bad_rows=len(bad), rows=int((~blank).sum()), lines=lines)


def _split_header(data: bytes, header: CsvHeader, first: bool, prediction_column: str) -> tuple[bytes, bytes, int]:
    """(output header line, the chunk's records, input line number of the first record): chunk 0 holds the header."""
    if not first:
        return b"", data, 1
    hl = header.header_length
    eol = header.line_ending.encode()
    head_out = data[: hl - len(eol)] + b"," + csv_field(prediction_column).encode() + eol
    return head_out, data[hl:], 1 + data[:hl].count(b"\n")


def _predict(
    parsed: Mapping[str, numbers.ParsedNumbers], valid: np.ndarray[Any, Any], predict: Predict, model_label: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(predictions, valid rows, rows the model gave no finite value): the model sees only rows whose features parsed.

    `valid` holds the rows with the right field count; rows with a refused feature value are taken out first.
    """
    import numpy as np

    for p in parsed.values():
        valid = valid & (p.problems == numbers.OK)
    predictions = np.full(len(valid), np.nan)
    if valid.any():
        out = np.asarray(predict({f: p.values[valid] for f, p in parsed.items()}), dtype=np.float64).reshape(-1)
        if len(out) != int(valid.sum()):
            raise ScoringError(f"model {model_label} returned {len(out)} predictions for {int(valid.sum())} rows")
        predictions[valid] = out
    finite = np.isfinite(predictions)
    return predictions, valid & finite, valid & ~finite


def _texts_fast(
    body: bytes, rows: Rows, blank: np.ndarray[Any, Any], col_index: Mapping[str, int], ncols: int
) -> dict[str, pl.Series] | None:
    """Feature texts by polars' CSV reader, when records are lines (no quoted line breaks, no blank lines)."""
    import polars as pl

    if not len(rows.starts) or rows.quoted_newline or blank.any():
        return None
    if rows.crlf.any() and not rows.crlf[rows.terminated].all():
        return None  # mixed line endings: keep each row's own, the slow way
    if body.endswith(b"\r"):
        return None
    names = [f"column_{i + 1}" for i in range(ncols)]
    try:
        frame = pl.read_csv(
            body,
            has_header=False,
            schema=dict.fromkeys(names, pl.String),
            columns=sorted({names[i] for i in col_index.values()}),
            quote_char='"',
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as err:
        log.debug("polars could not read the chunk (%s); scoring it row by row", err)
        return None
    if frame.height != len(rows.starts):
        return None
    return {f: frame[names[i]] for f, i in col_index.items()}


def _texts_slow(
    body: bytes,
    rows: Rows,
    blank: np.ndarray[Any, Any],
    ragged: np.ndarray[Any, Any],
    col_index: Mapping[str, int],
) -> dict[str, pl.Series]:
    """Feature texts row by row with the csv module (quoted line breaks, blank lines, mixed line endings)."""
    import polars as pl

    out: dict[str, list[str | None]] = {f: [] for f in col_index}
    for s, e, skip in zip(rows.starts.tolist(), rows.cends.tolist(), (blank | ragged).tolist(), strict=True):
        if skip:
            for column in out.values():
                column.append(None)
            continue
        line = body[s:e].decode("utf-8")
        fields = _split_fields(line) if '"' in line else line.split(",")
        for f, i in col_index.items():
            out[f].append(fields[i] if i < len(fields) else None)
    return {f: pl.Series(f, v, dtype=pl.String) for f, v in out.items()}


def _split_fields(line: str) -> list[str]:
    """Fields of one record by quote parity (the rule that found the records), unquoted as RFC 4180 says."""
    fields: list[str] = []
    pending: list[str] = []
    for part in line.split(","):
        pending.append(part)
        if sum(p.count('"') for p in pending) % 2 == 0:
            fields.append(",".join(pending))
            pending = []
    if pending:
        fields.append(",".join(pending))
    return [f[1:-1].replace('""', '"') if len(f) >= 2 and f[0] == f[-1] == '"' else f for f in fields]


def _assemble_fast(body: bytes, rows: Rows, pred_text: pl.Series) -> bytes:
    """Raw line + "," + prediction + the chunk's (uniform) line ending, written by polars."""
    import polars as pl

    sep = next((c for c in _SEPARATOR_CANDIDATES if c.encode() not in body), None)
    if sep is None:
        return _assemble_slow(body, rows, rows.cends == rows.starts, pred_text)
    raw = pl.read_csv(
        body,
        has_header=False,
        separator=sep,
        quote_char=None,
        schema={"l": pl.String},
        raise_if_empty=False,
    )["l"]
    if len(raw) != len(rows.starts) or raw.null_count():
        return _assemble_slow(body, rows, rows.cends == rows.starts, pred_text)
    eol = "\r\n" if rows.crlf.any() else "\n"
    buffer = io.BytesIO()
    pl.DataFrame({"l": raw, "p": pred_text}).write_csv(
        buffer, include_header=False, quote_style="never", line_terminator=eol
    )
    del raw
    if not rows.terminated[-1]:
        buffer.truncate(buffer.tell() - len(eol))
    return buffer.getvalue()


def _assemble_slow(body: bytes, rows: Rows, blank: np.ndarray[Any, Any], pred_text: pl.Series) -> bytes:
    """The input bytes with "," + prediction inserted at each row's content end (blank lines untouched)."""
    parts: list[bytes] = []
    pos = 0
    for e, skip, p in zip(rows.cends.tolist(), blank.tolist(), pred_text.to_list(), strict=True):
        if skip:
            continue
        parts.append(body[pos:e])
        parts.append(b"," + p.encode())
        pos = e
    parts.append(body[pos:])
    return b"".join(parts)
