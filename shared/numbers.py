"""The one parser of feature values (heights) from text, shared by batch scoring and real-time scoring.

Grammar, after stripping spaces, tabs, CR and LF around the value: an optional sign, ASCII digits with an
optional decimal point (`138`, `138.5`, `.5`, `138.`), and an optional exponent (`1.5e2`), giving a finite
float64. Everything else is refused with a problem code:

- `missing`: nothing (empty or only spaces);
- `non_ascii_digits`: written with digits other than ASCII 0-9 (full-width digits U+FF10..U+FF19, Arabic-Indic
  digits, ...). Refused on purpose: CSV exporters write ASCII, and other tools' `float()`s disagree on these, so
  a file would score differently elsewhere;
- `out_of_range`: a number beyond float64 (`1e400`);
- `not_a_number`: anything else (`abc`, `1,5`, `0x10`, `1_000`, `inf`, `nan`).

Vectorised (polars) so a chunk of bad rows costs what a chunk of good rows costs; the real-time path calls the
same function on its few values, so both paths accept exactly the same texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

GRAMMAR = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# A decimal digit (Unicode category Nd) that is not ASCII: the regex crate's class difference.
_NON_ASCII_DIGIT = r"[\p{Nd}--[0-9]]"
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
    texts: pl.Series  # the values as read, stripped (null where the field was absent)


def parse_numbers(texts: pl.Series | Sequence[str | None]) -> ParsedNumbers:
    """Parse every text by the grammar above, in one vectorised pass."""
    import numpy as np
    import polars as pl

    series = texts if isinstance(texts, pl.Series) else pl.Series("value", list(texts), dtype=pl.String)
    stripped = series.cast(pl.String).str.strip_chars(_STRIPPED)
    frame = pl.DataFrame({"t": stripped}).select(
        value=pl.when(pl.col("t").str.contains(GRAMMAR)).then(pl.col("t").cast(pl.Float64, strict=False)),
        problem=pl.when(pl.col("t").is_null() | (pl.col("t") == ""))
        .then(MISSING)
        .when(pl.col("t").str.contains(GRAMMAR))
        .then(pl.lit(OUT_OF_RANGE))  # provisional: cleared below where the float is finite
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
    """The message a person reads for one refused value, naming where it was (`query parameter 'height'`)."""
    shown = text or ""
    if problem == MISSING:
        return f"{where}: empty value, expected a number such as {EXAMPLE}"
    if problem == NON_ASCII_DIGITS:
        return f"{where}: {shown!r} has non-ASCII digits, expected ASCII digits 0-9 such as {EXAMPLE}"
    if problem == OUT_OF_RANGE:
        return f"{where}: {shown!r} is out of range, expected a finite number"
    return f"{where}: expected a finite number such as {EXAMPLE}, got {shown!r}"
