"""The one parser of feature values (heights) from text, shared by batch scoring and real-time scoring.

Grammar, after stripping spaces, tabs, CR and LF around the value: an optional sign, ASCII digits with an
optional decimal point (`138`, `138.5`, `.5`, `138.`), and an optional exponent (`1.5e2`), with at most 100
digits before the point and a positive exponent of at most two digits: every such text is a finite float64 (below
1e199), so the grammar alone says which texts are numbers, and the HTTP contract can state it as a pattern
(shared.web.contract). Everything else is refused with a problem code:

- `missing`: nothing (empty or only spaces);
- `non_ascii_digits`: written with digits other than ASCII 0-9 (full-width digits U+FF10..U+FF19, Arabic-Indic
  digits, ...). Refused on purpose: CSV exporters write ASCII, and other tools' `float()`s disagree on these, so
  a file would score differently elsewhere;
- `out_of_range`: a number written beyond those bounds (`1e400`, `1e100`; a height is never near them);
- `not_a_number`: anything else (`abc`, `1,5`, `0x10`, `1_000`, `inf`, `nan`).

A polars Series (a batch chunk's column) is parsed vectorised, so a chunk of bad rows costs what a chunk of good
rows costs; a list (the few values of a real-time request) is parsed by the same pattern in Python's `re`, which
avoids polars' per-call cost (about 2 ms, mostly compiling the patterns) on every request. Both apply GRAMMAR
and the same problem rules; tests/unit/test_bad_rows.py checks that they agree on any text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# The accepted texts, in the syntax both regex engines (polars' Rust crate and Python's re) read alike (and
# ECMA-262, for the OpenAPI document).
GRAMMAR = r"[+-]?(?:[0-9]{1,100}(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?:\+?[0-9]{1,2}|-[0-9]+))?"
# A number, but written beyond GRAMMAR's bounds: out of range.
_UNBOUNDED = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# A decimal digit (Unicode category Nd) that is not ASCII: the regex crate's class difference; in Python's re,
# \d is exactly category Nd for str patterns.
_NON_ASCII_DIGIT = r"[\p{Nd}--[0-9]]"
_PY_GRAMMAR = re.compile(GRAMMAR)
_PY_UNBOUNDED = re.compile(_UNBOUNDED)
_PY_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")
_STRIPPED = " \t\r\n"

OK, MISSING, NOT_A_NUMBER, NON_ASCII_DIGITS, OUT_OF_RANGE = 0, 1, 2, 3, 4
PROBLEMS: dict[int, str] = {
    MISSING: "missing",
    NOT_A_NUMBER: "not_a_number",
    NON_ASCII_DIGITS: "non_ascii_digits",
    OUT_OF_RANGE: "out_of_range",
}
EXAMPLE = "138"


@dataclass(frozen=True)
class ParsedNumbers:
    """Per value: the float64 (NaN when refused) and a problem code (OK = 0, else a key of PROBLEMS)."""

    values: np.ndarray[Any, Any]
    problems: np.ndarray[Any, Any]
    texts: pl.Series | list[str | None]  # the values as read, stripped (None where the field was absent)


def parse_numbers(texts: pl.Series | Sequence[str | None]) -> ParsedNumbers:
    """Parse every text by the grammar above: a polars Series vectorised, a list value by value."""
    if isinstance(texts, list | tuple):
        return _parse_few(texts)
    return _parse_series(cast("pl.Series", texts))


def _parse_few(texts: Sequence[str | None]) -> ParsedNumbers:
    import numpy as np

    stripped = [None if t is None else t.strip(_STRIPPED) for t in texts]
    values = np.full(len(stripped), np.nan)
    problems = np.zeros(len(stripped), dtype=np.uint8)
    for i, t in enumerate(stripped):
        if not t:
            problems[i] = MISSING
        elif _PY_GRAMMAR.fullmatch(t):
            value = float(t)
            if math.isfinite(value):  # always, within the grammar's bounds; kept as the guarantee's check
                values[i] = value
            else:
                problems[i] = OUT_OF_RANGE
        elif _PY_UNBOUNDED.fullmatch(t):
            problems[i] = OUT_OF_RANGE
        elif _PY_NON_ASCII_DIGIT.search(t):
            problems[i] = NON_ASCII_DIGITS
        else:
            problems[i] = NOT_A_NUMBER
    return ParsedNumbers(values, problems, stripped)


def _parse_series(texts: pl.Series) -> ParsedNumbers:
    import numpy as np
    import polars as pl

    stripped = texts.cast(pl.String).str.strip_chars(_STRIPPED)
    anchored = f"^{GRAMMAR}$"  # the regex crate's $ is the end of the text (no multi-line mode)
    frame = pl.DataFrame({"t": stripped}).select(
        value=pl.when(pl.col("t").str.contains(anchored)).then(pl.col("t").cast(pl.Float64, strict=False)),
        problem=pl.when(pl.col("t").is_null() | (pl.col("t") == ""))
        .then(MISSING)
        .when(pl.col("t").str.contains(anchored))
        .then(pl.lit(OUT_OF_RANGE))  # provisional: cleared below where the float is finite
        .when(pl.col("t").str.contains(f"^{_UNBOUNDED}$"))
        .then(pl.lit(OUT_OF_RANGE))
        .when(pl.col("t").str.contains(_NON_ASCII_DIGIT))
        .then(NON_ASCII_DIGITS)
        .otherwise(NOT_A_NUMBER)
        .cast(pl.UInt8),
    )
    values = np.array(frame["value"].fill_null(np.nan).to_numpy(), dtype=np.float64)  # writable copy
    problems = np.array(frame["problem"].to_numpy(), dtype=np.uint8)
    finite = np.isfinite(values)
    problems[finite & (problems == OUT_OF_RANGE)] = OK
    values[~finite] = np.nan
    return ParsedNumbers(values, problems, stripped)


def describe(problem: int, text: str | None, where: str) -> str:
    """The message a person reads for one refused value, naming where it was (`height[1]`, `CSV row 3, column
    'height'`), in the HTTP API's wording: `<where>: expected <what>, got <value>`."""
    shown = json.dumps(text or "")
    if problem == MISSING:
        return f"{where}: expected a number such as {EXAMPLE}, got an empty value"
    if problem == NON_ASCII_DIGITS:
        return f"{where}: expected ASCII digits 0-9 such as {EXAMPLE}, got {shown} (non-ASCII digits)"
    if problem == OUT_OF_RANGE:
        return (
            f"{where}: expected a number with at most 100 digits before the point and an exponent of at most 99, "
            f"got {shown} (out of range)"
        )
    return f"{where}: expected a number such as {EXAMPLE}, got {shown}"
