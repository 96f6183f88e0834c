"""Plans byte-range chunks of a CSV blob aligned to row starts, reading small windows, never the whole blob.

Quoting follows RFC 4180: a `"` opens or closes a quoted field and `""` is an escaped quote, so whether a byte
lies inside quotes is the parity of the quotes before it. The planner cannot know that parity at a boundary
without reading everything before it, so it plans speculatively: each boundary goes to the next line start.
Each scored chunk reports the parity of its quotes; all even proves every boundary was a row start. An odd
chunk means a quoted field with a line break spans a boundary: `realign` then moves exactly the affected
boundaries to the next row start, using the known parity, and only the changed chunks are scored again.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.errors import ScoringError
from shared.payloads import Payload

Reader = Callable[[int, int], bytes]
"""read(start, end) -> bytes [start, end) of the blob."""

BOM = b"\xef\xbb\xbf"
WINDOW = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CsvHeader(Payload):
    """The header line: its columns and the byte layout the scorers need."""

    columns: tuple[str, ...]
    line_ending: str  # "\r\n", "\n", or "" when the file is only a header without a line break
    bom_length: int
    header_length: int  # bytes of BOM + header line + its line ending


@dataclass(frozen=True)
class ChunkRange:
    """Bytes [start, end) of the blob; chunk 0 starts at 0 and holds the header. Empty when start == end."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def read_header(read: Reader, size: int, source: str) -> CsvHeader:
    """Parse the first row (quote-aware, so a quoted line break in a column name is fine)."""
    if size == 0:
        raise ScoringError(f"{source} is empty: a header line naming the columns is required")
    window = min(WINDOW, size)
    while True:
        head = read(0, window)
        bom = len(BOM) if head.startswith(BOM) else 0
        end = _row_end(head, bom, in_quotes=False)
        if end is not None or window >= size:
            break
        if window >= MAX_HEADER_BYTES:
            raise ScoringError(f"{source} has no line break in its first {MAX_HEADER_BYTES} bytes")
        window = min(window * 4, size)
    stop = len(head) if end is None else end
    line = head[bom:stop]
    eol = ""
    if line.endswith(b"\n"):
        eol = "\r\n" if line.endswith(b"\r\n") else "\n"
    content = line[: len(line) - len(eol)]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScoringError(
            f"{source} is not UTF-8 text: byte 0x{content[err.start]:02x} at offset {bom + err.start} "
            "of the header cannot be decoded (save the file as UTF-8)"
        ) from err
    try:
        columns = tuple(next(csv.reader([text], strict=False), [""]))
    except csv.Error as err:
        raise ScoringError(
            f"{source}: the header line cannot be read as CSV ({err}); lines must end in LF or CRLF"
        ) from None
    if not any(c.strip() for c in columns):
        raise ScoringError(f"{source} starts with an empty line: a header line naming the columns is required")
    return CsvHeader(columns=columns, line_ending=eol, bom_length=bom, header_length=stop)


def plan_chunks(read: Reader, size: int, chunk_bytes: int, source: str) -> tuple[CsvHeader, list[ChunkRange]]:
    """The header and chunks of about `chunk_bytes`, each boundary moved to the start of the next line."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    header = read_header(read, size, source)
    bounds = [0]
    target = max(chunk_bytes, header.header_length)
    while target < size:
        start = _next_line_start(read, size, target)
        if start >= size:
            break
        if start > bounds[-1]:
            bounds.append(start)
        target = max(start, bounds[-1]) + chunk_bytes
    bounds.append(size)
    return header, [ChunkRange(i, s, e) for i, (s, e) in enumerate(itertools.pairwise(bounds))]


def realign(read: Reader, size: int, chunks: Sequence[ChunkRange], quote_parities: Sequence[int]) -> list[ChunkRange]:
    """Move each boundary that lies inside a quoted field to the next row start; indexes stay the same.

    `quote_parities[i]` is the parity of the quote characters in chunk i as planned. A chunk may become
    empty (start == end) when a quoted field swallows it whole.
    """
    if len(chunks) != len(quote_parities):
        raise ValueError("one quote parity per chunk is required")
    starts = [c.start for c in chunks]
    # Inside-or-outside at a planned boundary is the parity of all quotes before it: a property of the
    # position, so it is the running XOR of the planned chunks' parities, unaffected by earlier moves.
    in_quotes = False
    for i in range(1, len(chunks)):
        in_quotes ^= bool(quote_parities[i - 1] & 1)
        if starts[i] <= starts[i - 1]:
            # The previous boundary moved past this one: both lay in the same quoted field, so they share its
            # next row start. Scanning again would make one long field cost (boundaries x its length).
            starts[i] = starts[i - 1]
            continue
        if in_quotes:
            starts[i] = _next_row_start_in_quotes(read, size, starts[i])
        starts[i] = max(starts[i], starts[i - 1])
    ends = [*starts[1:], size]
    out = [ChunkRange(c.index, s, max(s, e)) for c, s, e in zip(chunks, starts, ends, strict=True)]
    return out


def _row_end(data: bytes, pos: int, in_quotes: bool) -> int | None:
    """Index just past the first line break outside quotes at or after `pos`, or None if there is none."""
    i = pos
    n = len(data)
    while i < n:
        nl = data.find(b"\n", i)
        if nl < 0:
            return None
        if (data.count(b'"', i, nl) & 1) == 1:
            in_quotes = not in_quotes
        if not in_quotes:
            return nl + 1
        i = nl + 1
    return None


def _next_line_start(read: Reader, size: int, target: int) -> int:
    """The first line start at or after `target` (quote-blind), reading growing windows."""
    pos = target - 1  # a line break at target-1 makes target itself a line start
    window = WINDOW
    while pos < size:
        data = read(pos, min(pos + window, size))
        nl = data.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(data)
        window = min(window * 2, 16 * WINDOW)
    return size


def _next_row_start_in_quotes(read: Reader, size: int, pos: int) -> int:
    """The first line start after `pos` outside quotes, given that `pos` lies inside a quoted field."""
    in_quotes = True
    window = WINDOW
    while pos < size:
        data = read(pos, min(pos + window, size))
        i = 0
        while True:
            nl = data.find(b"\n", i)
            if nl < 0:
                if data.count(b'"', i) & 1:
                    in_quotes = not in_quotes
                break
            if data.count(b'"', i, nl) & 1:
                in_quotes = not in_quotes
            if not in_quotes:
                return pos + nl + 1
            i = nl + 1
        pos += len(data)
        window = min(window * 2, 16 * WINDOW)
    return size
