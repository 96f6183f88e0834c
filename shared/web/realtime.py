"""Real-time scoring requests and answers as pure functions: query strings and bodies in, feature columns out;
predictions in, response bodies out. Bad input raises InputError naming the field and what was expected, in the
contract's one wording (shared.web.contract).

Contracts:
- `GET /api/weight?height=138` -> `{"response": [39.519...]}`; several heights as repeated parameters
  (`height=150&height=180`) and/or comma-separated (`height=150,180`), answered in that order.
- `POST /api/score` with JSON `{"rows": [{"height": 138}, ...]}` -> JSON
  `{"model": {"name", "version"}, "predictions": [...]}`. A `text/csv` (or `application/csv`) body
  (header + rows) is answered as CSV: the input columns as sent plus the prediction column, the same
  shape as batch scoring's output; send `Accept: application/json` to get the JSON answer instead.
  Any other or missing content type is read as JSON.
- Numbers are printed with Python's shortest round-trip repr, so real-time and batch scoring print the
  same digits for the same input (the model runs in float64 end to end); both read numbers with the batch
  scorer's parser (shared.scoring.numbers).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import numpy.typing as npt

from shared.errors import InputError, PayloadTooLargeError, RequestFieldError
from shared.web import contract

HEIGHT = "height"
# One request is for a person or a form, not a file: above this, use batch scoring (upload the CSV).
MAX_ROWS = contract.MAX_ROWS
JSON_EXAMPLE = '{"rows": [{"height": 138}]}'

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreRequest:
    """Feature columns of a /api/score body; for a CSV body also its cells, echoed in the CSV answer."""

    columns: dict[str, FloatArray]
    rows: int
    csv_header: tuple[str, ...] | None = None
    csv_rows: tuple[tuple[str, ...], ...] = ()

    @property
    def is_csv(self) -> bool:
        return self.csv_header is not None


def parse_numbers(texts: Sequence[str], where: Callable[[int], str], *, is_field: bool = False) -> FloatArray:
    """Finite numbers from texts by the batch scorer's own parser (shared.scoring.numbers: ASCII decimals only).

    InputError for the first refused value, named by `where(index)` (a RequestFieldError when that is a field's
    path, such as `height[1]`).
    """
    from shared.scoring.numbers import OK, describe
    from shared.scoring.numbers import parse_numbers as parse

    parsed = parse(texts)
    bad = np.flatnonzero(parsed.problems != OK)
    if len(bad):
        i = int(bad[0])
        message = describe(int(parsed.problems[i]), parsed.texts[i], where(i))
        raise RequestFieldError(where(i), message) if is_field else InputError(message)
    return np.asarray(parsed.values, dtype=np.float64)


def _check_rows(rows: int, where: str, max_rows: int) -> None:
    if rows > max_rows:
        raise RequestFieldError(
            where, f"{where}: expected at most {max_rows} rows (upload a CSV for batch scoring), got {rows}"
        )


def parse_weight_query(url: str, max_rows: int = MAX_ROWS) -> FloatArray:
    """Heights of `/api/weight?height=...`, from the URL (HttpRequest.params keeps only one of repeated values)."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    raw = [value for key, value in pairs if key == HEIGHT]
    if not raw:
        raise contract.missing(HEIGHT, "e.g. ?height=138 (several: ?height=150&height=180 or ?height=150,180)")
    items = [item for value in raw for item in value.split(",")]
    _check_rows(len(items), HEIGHT, max_rows)
    # The batch grammar on each value is exactly the document's pattern (contract.HEIGHTS_PATTERN) on each parameter.
    return parse_numbers(items, lambda i: HEIGHT if len(items) == 1 else f"{HEIGHT}[{i}]", is_field=True)


def weight_body(predictions: FloatArray) -> str:
    return json.dumps({"response": predictions.tolist()})


def parse_score_body(
    body: bytes,
    content_type: str | None,
    features: Sequence[str],
    max_bytes: int,
    max_rows: int = MAX_ROWS,
) -> ScoreRequest:
    """Feature columns of a `/api/score` body (JSON rows or CSV), checked before anything is scored."""
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"body: expected at most {max_bytes} bytes (SCORE_MAX_BODY_BYTES; upload large files for batch "
            f"scoring), got {len(body)}"
        )
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in ("text/csv", "application/csv"):
        return _parse_csv(body, features, max_rows)
    return _parse_json(body, features, max_rows)


def _parse_json(body: bytes, features: Sequence[str], max_rows: int) -> ScoreRequest:
    from shared.web.inputs import json_object

    data = json_object(body, f"{JSON_EXAMPLE} (or send Content-Type: text/csv)")
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        _check_rows(len(data["rows"]), "rows", max_rows)
    # Each row against the model that is also the OpenAPI schema (pydantic, imported on the first request).
    validated = contract.validate(contract.ScoreBody, data).rows
    rows: list[dict[str, Any]] = data["rows"]
    values = np.empty((len(features), len(rows)), dtype=np.float64)
    for j, feature in enumerate(features):
        if feature == HEIGHT:  # checked by the model: finite, a number
            values[j] = np.fromiter((row.height for row in validated), dtype=np.float64, count=len(rows))
            continue
        # A model card may name features beyond the schema's height: those are checked here.
        for i, row in enumerate(rows):
            if feature not in row:
                raise contract.missing(f"rows[{i}].{feature}", "a finite number")
            values[j, i] = _json_number(row[feature], f"rows[{i}].{feature}")
    return ScoreRequest({feature: values[j] for j, feature in enumerate(features)}, len(rows))


def _json_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise contract.refuse(where, "a finite number", value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(value) > contract.MAX_FLOAT:  # an integer is compared exactly
        raise RequestFieldError(where, f"{where}: expected a finite number, got {contract.shown(value)}")
    return number


def _parse_csv(body: bytes, features: Sequence[str], max_rows: int) -> ScoreRequest:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RequestFieldError(
            "body", f"body: expected UTF-8 CSV text, got a byte {body[err.start]:#04x} that is not UTF-8"
        ) from None
    try:
        lines = [row for row in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise RequestFieldError("body", f"body: expected CSV text, got text that is not CSV ({err})") from None
    if not lines:
        raise RequestFieldError(
            "body", "body: expected a CSV header such as 'height' and one row per prediction, got none"
        )
    header = tuple(cell.strip() for cell in lines[0])
    data = lines[1:]
    for feature in features:
        if header.count(feature) != 1:
            raise RequestFieldError(
                "body", f"body: expected a CSV header naming column {feature!r} once, got {list(header)}"
            )
    if not data:
        raise RequestFieldError("body", "body: expected one CSV row per prediction after the header, got none")
    _check_rows(len(data), "body", max_rows)
    indexes = [header.index(feature) for feature in features]
    for i, row in enumerate(data):
        if len(row) != len(header):
            raise InputError(f"CSV row {i + 1}: expected {len(header)} fields like the header, got {len(row)}")
    columns: dict[str, FloatArray] = {}
    for feature, index in zip(features, indexes, strict=True):
        columns[feature] = parse_numbers([row[index] for row in data], _csv_cell(feature))
    return ScoreRequest(
        columns,
        len(data),
        csv_header=header,
        csv_rows=tuple(tuple(row) for row in data),
    )


def _csv_cell(feature: str) -> Callable[[int], str]:
    return lambda i: f"CSV row {i + 1}, column {feature!r}"


def score_json(name: str, version: str, predictions: FloatArray) -> str:
    return json.dumps({"model": {"name": name, "version": version}, "predictions": predictions.tolist()})


def score_csv(request: ScoreRequest, prediction_column: str, predictions: FloatArray) -> str:
    """The CSV body's rows as sent plus the prediction column (a column of that name is replaced)."""
    header = request.csv_header or ()
    keep = [i for i, name in enumerate(header) if name != prediction_column]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in keep] + [prediction_column])
    for row, value in zip(request.csv_rows, predictions.tolist(), strict=True):
        writer.writerow([row[i] for i in keep] + [repr(value)])
    return out.getvalue()


def score_answer(
    request: ScoreRequest,
    predictions: FloatArray,
    *,
    name: str,
    version: str,
    prediction_column: str,
    accept: str | None,
) -> tuple[str, str]:
    """(body, mimetype) of a /api/score answer: CSV for a CSV body unless JSON is asked for, else JSON."""
    if request.is_csv and "application/json" not in (accept or "").lower():
        return score_csv(request, prediction_column, predictions), "text/csv"
    return score_json(name, version, predictions), "application/json"
