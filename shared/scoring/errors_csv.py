"""The errors CSV of bad rows (README, "Heights, bad rows and the errors CSV").

One row per run of consecutive bad lines with the same problem, `line,last_line,column,problem,value`, the value
cut to VALUE_CHARS characters. Found and written column-wise (numpy/polars), so a chunk of bad rows costs about
what a chunk of good rows costs, and the errors CSV stays proportionate to the input (a file of one repeated bad
row gives one errors row per chunk). A chunk writes its rows with chunk-relative line numbers; the commit shifts
them to input line numbers (shift_errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.scoring import numbers
from shared.scoring.csv_rows import Rows

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

ERRORS_COLUMNS = ("line", "last_line", "column", "problem", "value")
# Problems of a whole row, after the value problems of shared.scoring.numbers (1-4).
FIELD_COUNT, MODEL_OUTPUT = 10, 11
PROBLEMS: dict[int, str] = {**numbers.PROBLEMS, FIELD_COUNT: "field_count", MODEL_OUTPUT: "model_output"}
VALUE_CHARS = 20  # enough to recognise a value; bounds an errors row whatever the input's field sizes


def errors_csv(
    body: bytes,
    bad: np.ndarray[Any, Any],
    *,
    rows: Rows,
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
    problem, column = _problems(bad, ragged=ragged, bad_prediction=bad_prediction, parsed=parsed, features=features)
    found = np.where(ragged[bad], rows.fields[bad], 0)
    starts, last = _runs(line, problem, column, found)
    value = _values(bad, starts, problem, column, found, parsed=parsed, features=features, ncols=ncols)
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


def _problems(
    bad: np.ndarray[Any, Any],
    *,
    ragged: np.ndarray[Any, Any],
    bad_prediction: np.ndarray[Any, Any],
    parsed: Mapping[str, numbers.ParsedNumbers],
    features: Sequence[str],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Problem code and feature index (-1: whole row) of each bad row: a whole-row problem, else the first feature
    (in model order) refused."""
    import numpy as np

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
    return problem, column


def _runs(
    line: np.ndarray[Any, Any], problem: np.ndarray[Any, Any], column: np.ndarray[Any, Any], found: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(first, last) bad row of each run of consecutive lines with the same problem and column (and field count).

    A run becomes one errors row (line .. last_line) showing its first line's value: a file of one repeated bad
    row gives one row per chunk.
    """
    import numpy as np

    first = np.ones(len(line), dtype=bool)
    first[1:] = (
        (line[1:] != line[:-1] + 1)
        | (problem[1:] != problem[:-1])
        | (column[1:] != column[:-1])
        | (found[1:] != found[:-1])
    )
    starts = np.flatnonzero(first)
    return starts, np.append(starts[1:], len(line)) - 1


def _values(
    bad: np.ndarray[Any, Any],
    starts: np.ndarray[Any, Any],
    problem: np.ndarray[Any, Any],
    column: np.ndarray[Any, Any],
    found: np.ndarray[Any, Any],
    *,
    parsed: Mapping[str, numbers.ParsedNumbers],
    features: Sequence[str],
    ncols: int,
) -> pl.Series:
    """The `value` of each run: its first line's refused text, or for a field count how many fields it has."""
    import numpy as np
    import polars as pl

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
    return value


def _shown(value: pl.Expr) -> pl.Expr:
    """A value as the errors CSV shows it: control characters as '?', cut to VALUE_CHARS with '...'."""
    import polars as pl

    clean = value.str.replace_all(r"[\x00-\x1f\x7f]", "?")
    return pl.when(clean.str.len_chars() > VALUE_CHARS).then(clean.str.slice(0, VALUE_CHARS) + "...").otherwise(clean)


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
