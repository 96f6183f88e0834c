"""Batch scoring below the orchestration: plan a CSV blob's chunks, score a chunk, commit the predictions.

A chunk's output is its input bytes with `,<prediction>` inserted before each row's line ending (input text is
never re-serialized), so the chunks' outputs, concatenated in order, are the predictions CSV. Bad rows keep
their place with an empty prediction and are listed, with chunk-relative line numbers, in a small part blob;
the commit step turns them into input line numbers from the chunks' line counts.

The errors CSV (README, "The errors CSV") has one row per run of consecutive bad lines with the same problem:
`line,last_line,column,problem,value`, the value cut to VALUE_CHARS characters. Found and written column-wise
(numpy/polars), so a chunk of bad rows costs about what a chunk of good rows costs, and the errors CSV stays
proportionate to the input (a file of one repeated bad row gives one errors row per chunk).
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import blobs, chunk_slots, numbers
from shared.csv_chunks import ChunkRange, CsvHeader, plan_chunks, realign
from shared.errors import BlocksLostError, NotFoundError, OutputChangedError, ScoringError, SourceChangedError
from shared.scoring_errors import header_hint, remove_error_document
from shared.scoring_payloads import ChunkPlan, ChunkResult, CommitResult, ScoringRequest

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

log = logging.getLogger(__name__)

Predict = Callable[[Mapping[str, "np.ndarray[Any, Any]"]], "np.ndarray[Any, Any]"]

ERRORS_COLUMNS = ("line", "last_line", "column", "problem", "value")
# Problems of a whole row, after the value problems of shared.numbers (1-4).
FIELD_COUNT, MODEL_OUTPUT = 10, 11
PROBLEMS: dict[int, str] = {**numbers.PROBLEMS, FIELD_COUNT: "field_count", MODEL_OUTPUT: "model_output"}
VALUE_CHARS = 20  # enough to recognise a value; bounds an errors row whatever the input's field sizes
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


@dataclass
class _Rows:
    starts: np.ndarray[Any, Any]  # first byte of each line-delimited record
    cends: np.ndarray[Any, Any]  # end of its content (before CRLF/LF)
    terminated: np.ndarray[Any, Any]  # has a line ending
    crlf: np.ndarray[Any, Any]
    fields: np.ndarray[Any, Any]  # separators outside quotes + 1
    quoted_newline: bool


def _split_rows(body: bytes) -> _Rows:
    """Records of `body` (which starts outside quotes): line breaks and commas outside quotes, vectorized."""
    import numpy as np

    a = np.frombuffer(body, dtype=np.uint8)
    n = len(a)
    if b'"' not in body:
        nl = np.flatnonzero(a == 10)
        commas = np.flatnonzero(a == 44)
        quoted_newline = False
    else:
        idx = np.flatnonzero((a == 10) | (a == 34) | (a == 44))
        kind = a[idx]
        is_quote = kind == 34
        # uint8 wraps at 256, which keeps the parity: whether an odd number of quotes precedes each position
        outside = (np.cumsum(is_quote, dtype=np.uint8) & 1) == 0
        nl = idx[outside & (kind == 10)]
        commas = idx[outside & (kind == 44)]
        quoted_newline = len(nl) != int(np.count_nonzero(kind == 10))
    terms = nl
    terminated = np.ones(len(nl), dtype=bool)
    if n and (len(nl) == 0 or nl[-1] != n - 1):
        terms = np.append(nl, n)
        terminated = np.append(terminated, False)
    starts = np.empty(len(terms), dtype=np.int64)
    if len(terms):
        starts[0] = 0
        starts[1:] = terms[:-1] + 1
    crlf = terminated & (terms > starts) & (a[np.maximum(terms - 1, 0)] == 13) if n else terminated
    cends = terms - crlf
    fields = np.bincount(np.searchsorted(terms, commas), minlength=len(terms))[: len(terms)] + 1
    return _Rows(starts, cends, terminated, crlf, fields, quoted_newline)


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
    parity = data.count(b'"') & 1
    if parity:
        return ScoredChunk(b"", lines=lines, quote_parity=1, misaligned=True)
    _check_utf8(data, source, offset)
    check_columns(header, features, source, model_label)

    head_out = b""
    body = data
    first_line = 1
    if first:
        hl = header.header_length
        eol = header.line_ending.encode()
        head_out = data[: hl - len(eol)] + b"," + csv_field(prediction_column).encode() + eol
        body = data[hl:]
        first_line += data[:hl].count(b"\n")

    rows = _split_rows(body)
    blank = rows.cends == rows.starts
    nrows = len(rows.starts)
    ncols = len(header.columns)
    ragged = (rows.fields != ncols) & ~blank
    col_index = {f: header.columns.index(f) for f in features}

    texts = _texts_fast(body, rows, blank, col_index, ncols)
    fast = texts is not None
    if texts is None:
        texts = _texts_slow(body, rows, blank, ragged, col_index)

    parsed = {f: numbers.parse_numbers(texts[f]) for f in features}
    values = {f: p.values for f, p in parsed.items()}
    valid = ~blank & ~ragged
    for p in parsed.values():
        valid &= p.problems == numbers.OK
    predictions = np.full(nrows, np.nan)
    if valid.any():
        out = np.asarray(predict({f: v[valid] for f, v in values.items()}), dtype=np.float64).reshape(-1)
        if len(out) != int(valid.sum()):
            raise ScoringError(f"model {model_label} returned {len(out)} predictions for {int(valid.sum())} rows")
        predictions[valid] = out
    bad_prediction = valid & ~np.isfinite(predictions)
    valid &= np.isfinite(predictions)
    pred_text = format_predictions(predictions, valid)

    bad = np.flatnonzero(~valid & ~blank)
    errors_csv = (
        _errors_csv(
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
        if len(bad)
        else b""
    )
    output = _assemble_fast(body, rows, pred_text) if fast else _assemble_slow(body, rows, blank, pred_text)
    return ScoredChunk(
        head_out + output,
        errors_csv=errors_csv,
        bad_rows=len(bad),
        rows=int((~blank).sum()),
        lines=lines,
        quote_parity=parity,
    )


def _texts_fast(
    body: bytes, rows: _Rows, blank: np.ndarray[Any, Any], col_index: Mapping[str, int], ncols: int
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
    rows: _Rows,
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


def _errors_csv(
    body: bytes,
    bad: np.ndarray[Any, Any],
    *,
    rows: _Rows,
    ragged: np.ndarray[Any, Any],
    bad_prediction: np.ndarray[Any, Any],
    parsed: Mapping[str, numbers.ParsedNumbers],
    features: Sequence[str],
    ncols: int,
    first_line: int,
) -> bytes:
    """Rows of the errors CSV for the bad rows `bad` (indexes of records), column-wise: no per-row Python."""
    import numpy as np
    import polars as pl

    a = np.frombuffer(body, dtype=np.uint8)
    line = first_line + np.searchsorted(np.flatnonzero(a == 10), rows.starts[bad])
    # Problem and column of each bad row: a whole-row problem, else the first feature (in model order) refused.
    problem = np.zeros(len(bad), dtype=np.uint8)
    column = np.full(len(bad), -1, dtype=np.int64)
    for i in reversed(range(len(features))):
        codes = parsed[features[i]].problems[bad]
        hit = codes != numbers.OK
        problem[hit], column[hit] = codes[hit], i
    problem[bad_prediction[bad]] = MODEL_OUTPUT
    column[bad_prediction[bad]] = -1
    is_ragged = ragged[bad]
    problem[is_ragged], column[is_ragged] = FIELD_COUNT, -1

    # Runs of consecutive lines with the same problem and column (and field count) become one row (line ..
    # last_line) showing the first line's value: a file of one repeated bad row gives one row per chunk.
    found = np.where(is_ragged, rows.fields[bad], 0)
    first = np.ones(len(bad), dtype=bool)
    first[1:] = (
        (line[1:] != line[:-1] + 1)
        | (problem[1:] != problem[:-1])
        | (column[1:] != column[:-1])
        | (found[1:] != found[:-1])
    )
    starts = np.flatnonzero(first)
    last = np.append(starts[1:], len(bad)) - 1

    value = pl.Series("value", [None] * len(starts), dtype=pl.String)
    for i, f in enumerate(features):
        mine = np.flatnonzero(column[starts] == i)
        if len(mine):
            texts = parsed[f].texts  # a Series: chunk columns are parsed vectorised
            column_texts = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
            value = value.scatter(mine, column_texts.gather(bad[starts[mine]]))
    shown_ragged = np.flatnonzero(problem[starts] == FIELD_COUNT)
    if len(shown_ragged):
        counts = pl.Series(found[starts[shown_ragged]]).cast(pl.String)
        value = value.scatter(shown_ragged, "found " + counts + f", expected {ncols}")
    names = np.array([None, *features], dtype=object)  # None: a whole-row problem, written empty
    kinds = np.array([PROBLEMS.get(code, "") for code in range(max(PROBLEMS) + 1)], dtype=object)
    frame = pl.DataFrame(
        {
            "line": line[starts],
            "last_line": line[last],
            # Through lists: polars cannot read an object array that holds only None.
            "column": pl.Series(names[column[starts] + 1].tolist(), dtype=pl.String),
            "problem": pl.Series(kinds[problem[starts]].tolist(), dtype=pl.String),
            "value": value,
        }
    ).with_columns(value=_shown(pl.col("value")))
    return frame.write_csv(include_header=False).encode()


def _shown(value: pl.Expr) -> pl.Expr:
    """A value as the errors CSV shows it: control characters as '?', cut to VALUE_CHARS with '...'."""
    import polars as pl

    clean = value.str.replace_all(r"[\x00-\x1f\x7f]", "?")
    return pl.when(clean.str.len_chars() > VALUE_CHARS).then(clean.str.slice(0, VALUE_CHARS) + "...").otherwise(clean)


def _assemble_fast(body: bytes, rows: _Rows, pred_text: pl.Series) -> bytes:
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


def _assemble_slow(body: bytes, rows: _Rows, blank: np.ndarray[Any, Any], pred_text: pl.Series) -> bytes:
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


def shift_errors(data: bytes, line_offset: int, header: bool = False) -> bytes:
    """Rows of an errors part with input line numbers (chunk-relative + `line_offset`), header when asked."""
    import polars as pl

    frame = pl.read_csv(
        data,
        has_header=False,
        new_columns=list(ERRORS_COLUMNS),
        schema_overrides={"line": pl.Int64, "last_line": pl.Int64, "column": pl.String, "problem": pl.String},
        infer_schema=False,
    )
    frame = frame.with_columns(pl.col("line", "last_line").cast(pl.Int64) + line_offset)
    return frame.write_csv(include_header=header).encode()


# --- blob-level steps, one per activity -------------------------------------------------------------------


def plan_scoring(
    request: ScoringRequest,
    *,
    chunk_bytes: int,
    output_container: str,
    errors_container: str,
    features: Sequence[str] = (),
    model_label: str = "model",
    env: Mapping[str, str] | None = None,
) -> ChunkPlan:
    """Read the blob's properties and header, check the model's columns, and plan line-aligned chunks."""
    info = blobs.find_blob(request.container, request.name, env)
    if info is None and request.etag:
        raise SourceChangedError(
            f"{request.source} was deleted before it was scored (the run was for eTag {request.etag.strip(chr(34))})"
        )
    if info is None:
        raise NotFoundError(f"blob {request.source} does not exist")
    if request.etag and info.etag.strip('"') != request.etag.strip('"'):
        raise SourceChangedError(
            f"{request.source} was replaced by eTag {info.etag.strip(chr(34))} before it was scored (the run was "
            f"for eTag {request.etag.strip(chr(34))}); nothing was committed: the new version's own event scores it"
        )
    request = ScoringRequest(
        account=request.account,
        container=request.container,
        name=request.name,
        etag=info.etag,
        size=info.size,
        force=request.force,
        run_id=request.run_id,
        requested=request.requested,
    )

    def read(start: int, end: int) -> bytes:
        return blobs.read_range(request.container, request.name, start, end, etag=info.etag, env=env)

    header, chunks = plan_chunks(read, info.size, chunk_bytes, request.source)
    if features:
        check_columns(header, features, request.source, model_label)
    for container in {output_container, errors_container}:
        blobs.ensure_container(container, env)
    log.info("planned %s chunks of %s (%s bytes, ETag %s)", len(chunks), request.source, info.size, info.etag)
    return ChunkPlan(
        request=request,
        header=header,
        chunks=tuple(chunks),
        output_container=output_container,
        output_name=request.name,
        errors_container=errors_container,
        errors_name=request.name,
        content_type="text/csv",
    )


def realign_plan(plan: ChunkPlan, results: Sequence[ChunkResult], env: Mapping[str, str] | None = None) -> ChunkPlan:
    """The plan with boundaries that fell inside quoted fields moved to row starts (see csv_chunks)."""
    by_index = {r.index: r for r in results}
    parities = [by_index[c.index].quote_parity for c in plan.chunks]
    req = plan.request

    def read(start: int, end: int) -> bytes:
        return blobs.read_range(req.container, req.name, start, end, etag=req.etag, env=env)

    chunks = realign(read, req.size, plan.chunks, parities)
    log.info("realigned the chunks of %s around quoted line breaks", req.source)
    return ChunkPlan(**{**plan.__dict__, "chunks": tuple(chunks)})


def changed_chunks(old: ChunkPlan, new: ChunkPlan) -> list[int]:
    """Indexes whose byte range differs between two plans: the only chunks to score again."""
    return [n.index for o, n in zip(old.chunks, new.chunks, strict=True) if (o.start, o.end) != (n.start, n.end)]


def _part_name(plan: ChunkPlan, index: int) -> str:
    return f"{plan.errors_name}.parts/{plan.request.run_key}/{index:06d}.csv"


def score_chunk(
    plan: ChunkPlan,
    index: int,
    *,
    features: Sequence[str],
    prediction_column: str,
    predict: Predict,
    model_label: str = "model",
    env: Mapping[str, str] | None = None,
) -> ChunkResult:
    """Score chunk `index`: stage its output block (id from the index), write its bad rows to a part blob."""
    # The orchestrator may pass a plan holding only this chunk (small activity inputs): look it up by index.
    chunk: ChunkRange | None = next((c for c in plan.chunks if c.index == index), None)
    if chunk is None:
        raise ScoringError(f"chunk {index} is not part of the plan of {plan.request.source}")
    req = plan.request
    result = ChunkResult(index=index, start=chunk.start, end=chunk.end)
    if chunk.size == 0:
        return result
    gate = chunk_slots.gate(env)
    # The slot covers everything that holds the chunk's bytes: the read, the scoring and the staged block.
    with gate.slot(f"chunk {index} of {req.source}") as busy:
        data = blobs.read_range(req.container, req.name, chunk.start, chunk.end, etag=req.etag, env=env)
        scored = score_chunk_bytes(
            data,
            header=plan.header,
            first=chunk.start == 0,
            features=features,
            prediction_column=prediction_column,
            predict=predict,
            source=req.source,
            offset=chunk.start,
            model_label=model_label,
        )
        del data
        if scored.misaligned:
            log.info("chunk %s of %s starts or ends inside a quoted field", index, req.source)
            return ChunkResult(
                index=index, start=chunk.start, end=chunk.end, lines=scored.lines, quote_parity=1, misaligned=True
            )
        block = blobs.block_id(index, req.run_key)
        if scored.output:
            blobs.stage_block(plan.output_container, plan.output_name, block, scored.output, env)
        part = ""
        if scored.errors_csv:
            part = _part_name(plan, index)
            blobs.upload(plan.errors_container, part, scored.errors_csv, env=env)
    log.info(
        "scored chunk %s of %s: %s rows, %s bad (%s of %s chunk slots of this process busy)",
        index,
        req.source,
        scored.rows,
        scored.bad_rows,
        busy,
        gate.limit,
    )
    return ChunkResult(
        index=index,
        start=chunk.start,
        end=chunk.end,
        rows=scored.rows,
        bad_rows=scored.bad_rows,
        lines=scored.lines,
        quote_parity=0,
        output_block=block if scored.output else "",
        output_bytes=len(scored.output),
        errors_part=part,
    )


# Rounds of "look at the output, commit if still right" when other runs keep committing in between.
COMMIT_ATTEMPTS = 5


def commit_predictions(
    plan: ChunkPlan,
    results: Sequence[ChunkResult],
    *,
    model_name: str,
    model_version: str,
    error_threshold: int = -1,
    env: Mapping[str, str] | None = None,
) -> CommitResult:
    """Commit the chunks' blocks in order: the predictions CSV (and errors CSV) appear at once, complete.

    Safe to run again: a blob already committed by this run is reported, not rewritten. Over the error
    threshold only the errors CSV is committed and ScoringError says why.

    Several runs may score one output at once (a forced run beside the first run of a version, events of two
    versions close together). Committing a block list discards every block of the blob that it does not list,
    so each run stages its blocks under ids of its own (`run_key`) and commits optimistically: it looks at the
    output, decides, and commits with If-Match on the ETag it saw (If-None-Match when there was no output).
    Storage enforces that nobody committed in between, with any number of workers and without locks that a
    lost worker could leave held. The decision:

    - the input no longer has this run's eTag (deleted or replaced): fail saying so; the newer version's run
      writes its output, and an older run can never overwrite it;
    - the output already holds this version from another run and this run is not forced, or it was forced before
      the run that wrote the output: nothing to write, the run ends "superseded" (committed false); otherwise a
      forced run writes its own predictions over it (force supersedes, whichever run ends first);
    - another run's commit discarded some of this run's staged blocks: `restage` lists those chunks, which the
      orchestrator scores again before committing again.
    """
    req = plan.request
    by_index = {r.index: r for r in results}
    missing = [c.index for c in plan.chunks if c.index not in by_index]
    if missing:
        raise ScoringError(f"cannot commit {req.source}: no result for chunks {missing}")
    ordered = [by_index[c.index] for c in plan.chunks]
    if any(r.misaligned or (r.start, r.end) != (c.start, c.end) for r, c in zip(ordered, plan.chunks, strict=True)):
        raise ScoringError(f"cannot commit {req.source}: chunk results do not match the (realigned) plan")
    rows = sum(r.rows for r in ordered)
    bad = sum(r.bad_rows for r in ordered)
    model = f"{model_name} v{model_version}"
    result = CommitResult(
        output_container=plan.output_container,
        output_name=plan.output_name,
        rows=rows,
        bad_rows=bad,
        committed=True,
        errors_container=plan.errors_container if bad else "",
        errors_name=plan.errors_name if bad else "",
        model=model,
        chunks=len(ordered),
    )
    over = 0 <= error_threshold < bad
    reason = (
        f"{req.source} has {bad} bad rows, more than SCORING_ERROR_THRESHOLD={error_threshold}: nothing was "
        f"committed to {plan.output_container}; the bad rows are listed in "
        f"{plan.errors_container}/{plan.errors_name}"
    )
    metadata = {
        "source_etag": req.etag.strip('"'),  # as Event Grid's eTag and the HTTP API show it
        "rows": str(rows),
        "bad_rows": str(bad),
        "model_name": _ascii(model_name),
        "model_version": _ascii(model_version),
        "run_id": _ascii(req.run_id),
        "run_key": req.run_key,
        "requested": req.requested,
    }
    target = (plan.errors_container, plan.errors_name) if over else (plan.output_container, plan.output_name)

    for _ in range(COMMIT_ATTEMPTS):
        # Both outputs are looked at before the input is checked: a newer version's run can then commit neither
        # between this run's check and its (conditional) commits without making them fail.
        errors_before = blobs.find_blob(plan.errors_container, plan.errors_name, env)
        done = errors_before if over else blobs.find_blob(*target, env)
        if done is not None and done.metadata.get("run_key") == req.run_key:
            log.info("%s was already committed by this run", req.source)
            if over:
                raise ScoringError(reason)
            return CommitResult(**{**result.__dict__, "etag": done.etag})

        current = blobs.find_blob(req.container, req.name, env)
        if current is None or current.etag != req.etag:
            _delete_parts(plan, ordered, env)
            raise blobs.source_changed(req.container, req.name, req.etag, env)

        if not over and done is not None and _superseded_by(done, req):
            _delete_parts(plan, ordered, env)
            other = done.metadata.get("run_id", "another run")
            log.info("%s: %s/%s already holds this version, from run %s", req.source, *target, other)
            return CommitResult(
                **{
                    **result.__dict__,
                    "committed": False,
                    "etag": done.etag,
                    "reason": f"superseded: {plan.output_container}/{plan.output_name} already holds the "
                    f"predictions of this version (eTag {req.etag.strip(chr(34))}) from run {other}",
                }
            )

        blocks = [r.output_block for r in ordered if r.output_block]
        if not over:
            staged = blobs.uncommitted_blocks(plan.output_container, plan.output_name, env)
            lost = [r.index for r in ordered if r.output_block and r.output_block not in staged]
            if lost:
                log.info("%s: %s staged blocks were discarded by another run's commit", req.source, len(lost))
                return CommitResult(**{**result.__dict__, "committed": False, "restage": lost})
        try:
            if bad:
                _commit_errors(plan, ordered, metadata, errors_before, env)
            if over:
                _delete_parts(plan, ordered, env)
                raise ScoringError(reason)
            etag = blobs.commit_blocks(
                plan.output_container,
                plan.output_name,
                blocks,
                content_type=plan.content_type,
                metadata=metadata,
                if_match=done.etag if done is not None else None,
                if_missing=done is None,
                env=env,
            )
        except (OutputChangedError, BlocksLostError) as err:
            log.info("%s: %s; looking again", req.source, err)
            continue
        # The file scored: a document saying it could not be (this version's or an older one's) is wrong now.
        remove_error_document(req, container=plan.errors_container, env=env)
        if not bad and errors_before is not None and _stale(errors_before, req, env):
            # Deleted only as it was seen: a newer version's run may be writing its own errors CSV by now.
            blobs.delete_blob(plan.errors_container, plan.errors_name, env, if_match=errors_before.etag)
        _delete_parts(plan, ordered, env)
        log.info(
            "committed %s/%s: %s rows, %s bad, model %s",
            plan.output_container,
            plan.output_name,
            rows,
            bad,
            model,
        )
        return CommitResult(**{**result.__dict__, "etag": etag})
    raise ScoringError(
        f"cannot commit {plan.output_container}/{plan.output_name}: other runs committed it {COMMIT_ATTEMPTS} "
        "times while this run tried; score the file again (POST /api/scoring with force)"
    )


def _same_source(output: blobs.BlobInfo, request: ScoringRequest) -> bool:
    return output.metadata.get("source_etag", "").strip('"') == request.etag.strip('"')


def _stale(errors: blobs.BlobInfo, request: ScoringRequest, env: Mapping[str, str] | None) -> bool:
    """An errors CSV of another version, while the input still is this run's version: it describes an older one."""
    if _same_source(errors, request):
        return False
    current = blobs.find_blob(request.container, request.name, env)
    return current is not None and current.etag == request.etag


def _superseded_by(output: blobs.BlobInfo, request: ScoringRequest) -> bool:
    """Whether `output`, committed by another run, already is what this run would write, or should win over it.

    Same input version and this run not forced (its predictions would be the same); or both forced and the other
    one requested later (force means "the newest request's predictions", whichever run ends first).
    """
    if not _same_source(output, request):
        return False  # an older version's output (newer ones are refused earlier, by the input's ETag)
    return not request.force or output.metadata.get("requested", "") > request.requested


def _commit_errors(
    plan: ChunkPlan,
    ordered: Sequence[ChunkResult],
    metadata: Mapping[str, str],
    before: blobs.BlobInfo | None,
    env: Mapping[str, str] | None,
) -> None:
    """Stage the parts as blocks of the errors CSV and commit them, unless it changed since `before` was seen.

    Raises OutputChangedError / BlocksLostError for the caller to look again; parts stay until the end, so
    staging them again is cheap.
    """
    req = plan.request
    blocks: list[str] = []
    lines_before = 0
    for r in ordered:
        if r.errors_part:
            part = blobs.read_range(
                plan.errors_container,
                r.errors_part,
                0,
                blobs.blob_info(plan.errors_container, r.errors_part, env).size,
                env=env,
            )
            data = shift_errors(part, lines_before, header=not blocks)
            block = blobs.block_id(r.index, req.run_key)
            blobs.stage_block(plan.errors_container, plan.errors_name, block, data, env)
            blocks.append(block)
        lines_before += r.lines
    blobs.commit_blocks(
        plan.errors_container,
        plan.errors_name,
        blocks,
        metadata=metadata,
        if_match=before.etag if before is not None else None,
        if_missing=before is None,
        env=env,
    )


def _delete_parts(plan: ChunkPlan, ordered: Sequence[ChunkResult], env: Mapping[str, str] | None) -> None:
    for r in ordered:
        if r.errors_part:
            blobs.delete_blob(plan.errors_container, r.errors_part, env)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
