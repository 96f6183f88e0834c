"""Chunk planning: boundaries at row starts from small windows, quoted line breaks realigned exactly."""

from __future__ import annotations

import itertools

import pytest

from shared.errors import ScoringError
from shared.scoring.csv_chunks import ChunkRange, plan_chunks, read_header, realign


class CountingReader:
    """read(start, end) over bytes, remembering how many bytes were asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bytes_read = 0

    def __call__(self, start: int, end: int) -> bytes:
        self.bytes_read += end - start
        return self.data[start:end]


@pytest.mark.parametrize(
    ("data", "columns", "eol", "bom", "length"),
    [
        (b"a,b\n1,2\n", ("a", "b"), "\n", 0, 4),
        (b"a,b\r\n1,2\r\n", ("a", "b"), "\r\n", 0, 5),
        (b"\xef\xbb\xbfheight,weight\n1,2\n", ("height", "weight"), "\n", 3, 17),
        (b'"x,y","multi\nline"\n1,2\n', ("x,y", "multi\nline"), "\n", 0, 19),
        (b"height", ("height",), "", 0, 6),
    ],
)
def test_header_shapes(data: bytes, columns: tuple[str, ...], eol: str, bom: int, length: int) -> None:
    header = read_header(CountingReader(data), len(data), "incoming/x.csv")
    assert (header.columns, header.line_ending, header.bom_length, header.header_length) == (
        columns,
        eol,
        bom,
        length,
    )


@pytest.mark.parametrize(("data", "message"), [(b"", "is empty"), (b"\n1,2\n", "empty line")])
def test_a_header_is_required(data: bytes, message: str) -> None:
    with pytest.raises(ScoringError, match=f"incoming/x.csv.*{message}|{message}"):
        read_header(CountingReader(data), len(data), "incoming/x.csv")


def test_not_utf8_header_names_the_offset() -> None:
    data = b"h\xe9ight,w\n1,2\n"
    with pytest.raises(ScoringError, match=r"incoming/x.csv is not UTF-8.*0xe9 at offset 1"):
        read_header(CountingReader(data), len(data), "incoming/x.csv")


def test_chunks_cover_the_file_at_line_starts_reading_only_windows() -> None:
    lines = [b"id,height\n"] + [f"{i},{150 + i % 50}.5\n".encode() for i in range(200_000)]
    data = b"".join(lines)
    reader = CountingReader(data)
    header, chunks = plan_chunks(reader, len(data), 256 * 1024, "x.csv")
    assert header.columns == ("id", "height")
    assert chunks[0].start == 0 and chunks[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert all(data[c.start - 1 : c.start] == b"\n" for c in chunks[1:])
    assert len(chunks) == pytest.approx(len(data) / (256 * 1024), abs=1)
    assert reader.bytes_read < len(data) / 2  # windows, not the whole blob


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 1000])
def test_tiny_chunk_sizes_and_a_last_line_without_break(chunk_bytes: int) -> None:
    data = b"a,b\r\n1,2\r\n3,4\r\n5,6"
    _, chunks = plan_chunks(CountingReader(data), len(data), chunk_bytes, "x.csv")
    assert b"".join(data[c.start : c.end] for c in chunks) == data
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.start == 0 or data[c.start - 1 : c.start] == b"\n" for c in chunks)
    if chunk_bytes == 1:
        assert [data[c.start : c.end] for c in chunks] == [b"a,b\r\n", b"1,2\r\n", b"3,4\r\n", b"5,6"]


def test_header_only_is_one_chunk() -> None:
    data = b"height,weight\n"
    _, chunks = plan_chunks(CountingReader(data), len(data), 2, "x.csv")
    assert chunks == [ChunkRange(0, 0, len(data))]


def test_realign_moves_boundaries_out_of_quoted_line_breaks() -> None:
    data = b'id,text\n1,"a\nb\nc"\n2,"d"\n3,x\n'
    reader = CountingReader(data)
    _, chunks = plan_chunks(reader, len(data), 1, "x.csv")
    parities = [data[c.start : c.end].count(b'"') % 2 for c in chunks]
    assert any(parities)  # some boundary fell inside "a\nb\nc"
    fixed = realign(reader, len(data), chunks, parities)
    assert [c.index for c in fixed] == [c.index for c in chunks]
    pieces = [data[c.start : c.end] for c in fixed if c.end > c.start]
    assert b"".join(pieces) == data
    assert b'1,"a\nb\nc"\n' in pieces
    assert all(p.count(b'"') % 2 == 0 for p in pieces)
