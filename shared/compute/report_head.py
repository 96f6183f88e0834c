"""The head of a saved run report: its top-level fields without `instances`, read without loading the instances.

A report puts `totals`, `arm_requests` and `workspaces` (and, from the fleet-scale runs on, every other top-level
field) before `instances`, so a reader that needs only those stops where `instances` begins: a report of 10,000
instances costs one ranged read of a few KB, not 5 MB parsed into 10,000 dicts. Reports saved before that order
was promised may carry fields after `instances` (the reconcile's `window`, `schedules_error`, `report_blob`...):
a caller that needs such a field says so (`needs`) and the reader skips the instances (parsing one at a time,
keeping none) to reach it. The first `rows` instances can be kept on the way, for a page's first rows.

Which reports exist and what their heads say, month by month, is shared.compute.run_reports' business.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

FIRST_READ = 8 * 1024  # bytes: a head with about 50 workspaces fits
MAX_READ = 4 * 1024 * 1024  # bytes per ranged read while skipping a long `instances` array
_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


class ReportFormatError(ValueError):
    """The blob is not a JSON object (or ends before it does)."""


@dataclass(frozen=True)
class ReportHead:
    """The top-level fields read (every one but `instances`), and the first instances when asked for."""

    fields: Mapping[str, Any]
    first_instances: tuple[Mapping[str, Any], ...] = ()
    more_instances: bool = False  # the report lists instances beyond `first_instances`
    complete: bool = False  # every top-level field was read (the reader reached the closing brace)
    size: int = 0  # bytes of the blob
    read_bytes: int = field(default=0, compare=False)


class _Text:
    """The blob's text, read in growing ranged reads as the parser asks for more; consumed text is dropped."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, first: bytes | None = None) -> None:
        self._read = read
        self.size = size
        self.offset = 0  # bytes read so far
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        if first is not None:
            self._take(first)

    @property
    def eof(self) -> bool:
        return self.offset >= self.size

    def more(self) -> None:
        if self.eof:
            raise ReportFormatError("the report ends before its JSON object does")
        step = FIRST_READ if self.offset == 0 else min(MAX_READ, max(64 * 1024, self.offset))
        end = min(self.size, self.offset + step)
        data = self._read(self.offset, end)
        if not data:
            raise ReportFormatError("the report could not be read to its end")
        self._take(data)

    def _take(self, data: bytes) -> None:
        self.offset += len(data)
        self.text = self.text[self.pos :] + self._decoder.decode(data, final=self.eof)
        self.pos = 0

    def skip_space(self) -> str:
        """The next character that is not white space (reading on as needed)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            self.more()

    def expect(self, chars: str) -> str:
        found = self.skip_space()
        if found not in chars:
            raise ReportFormatError(f"expected one of {chars!r} at byte ~{self.offset}, found {found!r}")
        self.pos += 1
        return found

    def value(self) -> Any:
        """The next JSON value, whole (reading on until it is complete)."""
        self.skip_space()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                if self.eof:
                    raise ReportFormatError(f"not valid JSON: {err.msg}") from None
                self.more()
                continue
            # A number at the end of the text read so far may go on in the next read (`12` of `1234`).
            if end == len(self.text) and not self.eof:
                self.more()
                continue
            self.pos = end
            return value


def parse_head(
    read: Callable[[int, int], bytes],
    size: int,
    *,
    rows: int = 0,
    needs: Collection[str] = (),
    first: bytes | None = None,
) -> ReportHead:
    """The head of the report of `size` bytes that `read(start, end)` reads (its `first` bytes already read, if
    given); see the module docstring."""
    text = _Text(read, size, first)
    fields: dict[str, Any] = {}
    kept: list[Mapping[str, Any]] = []
    more = False
    text.expect("{")
    if text.skip_space() == "}":
        text.pos += 1
        return ReportHead(fields, complete=True, size=size, read_bytes=text.offset)
    while True:
        key = text.value()
        if not isinstance(key, str):
            raise ReportFormatError("a report's keys are strings")
        text.expect(":")
        if key == "instances" and text.skip_space() == "[":
            text.pos += 1
            # On when a needed field may follow the instances, or when the whole blob is read already anyway.
            read_on = text.eof or not all(name in fields for name in needs)
            more = _instances(text, kept, rows, read_all=read_on)
            if not read_on:
                return ReportHead(fields, tuple(kept), more, False, size, text.offset)
        elif key == "instances":
            text.value()  # not a list: nothing to show
        else:
            fields[key] = text.value()
        if text.expect(",}") == "}":
            return ReportHead(fields, tuple(kept), more, True, size, text.offset)


def _instances(text: _Text, first: list[Mapping[str, Any]], rows: int, *, read_all: bool) -> bool:
    """Keep the first `rows` entries of the `instances` array; True when there are more. With `read_all`, skip
    the rest to the array's end (one entry at a time: nothing of them is kept)."""
    if text.skip_space() == "]":
        text.pos += 1
        return False
    count = 0
    while True:
        if count >= rows and not read_all:
            return True
        entry = text.value()
        if count < rows and isinstance(entry, Mapping):
            first.append(entry)
        count += 1
        if text.expect(",]") == "]":
            return count > rows


def read_head(
    container: str, name: str, env: Mapping[str, str] | None = None, *, rows: int = 0, needs: Collection[str] = ()
) -> ReportHead:
    """The head of the report blob `container/name`, by ranged reads (the first also says the blob's size)."""
    from shared import blobs

    first, size = blobs.read_start(container, name, FIRST_READ, env)

    def read(start: int, end: int) -> bytes:
        return blobs.read_range(container, name, start, end, env=env)

    return parse_head(read, size, rows=rows, needs=needs, first=first)
