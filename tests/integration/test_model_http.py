"""`GET /api/weight` and `POST /api/score` end to end: the real app on devhost, its answers checked against
the shipped model's card and a line refit from the shipped training data."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from shared.web.realtime import MAX_ROWS
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = pytest.mark.integration

MODEL_DIR = APP_ROOT / "models" / "height-weight"
DATA_CSV = APP_ROOT / "data" / "height_weight.csv"
CARD: dict[str, Any] = json.loads((MODEL_DIR / "card.json").read_text())
GOLDEN: dict[float, float] = {row["height"]: row["predicted_weight"] for row in CARD["golden"]}
MODEL_LABEL = f"{CARD['name']}/{CARD['version']}"
# Small, so the 413 case is cheap, yet large enough for MAX_ROWS + 1 JSON rows to reach the row check.
MAX_BODY = 200_000
# The golden rows were recorded with the model's own float64 arithmetic; only operation order may differ.
EXACT = 1e-9
APP_SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    # The nightly timer's schedule must be set for the app to start; 1 January never comes during a test.
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = start_devhost(
        tmp_path_factory.mktemp("model-devhost"), {**APP_SETTINGS, "SCORE_MAX_BODY_BYTES": str(MAX_BODY)}
    )
    yield running
    running.stop()


def _weights(host: RunningHost, query: str) -> list[float]:
    response = host.request("GET", f"/api/weight?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"response"}
    values: list[float] = body["response"]
    return values


def _refit_line() -> tuple[float, float]:
    """Least-squares line of weight on height over every row of the shipped training data."""
    with DATA_CSV.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    heights = np.array([float(row["height"]) for row in rows])
    weights = np.array([float(row["weight"]) for row in rows])
    slope, intercept = np.polyfit(heights, weights, 1)
    return float(slope), float(intercept)


def _score(host: RunningHost, body: bytes | str, content_type: str = "application/json", **kwargs: Any) -> Any:
    headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
    data = body.encode() if isinstance(body, str) else body
    return host.request("POST", "/api/score", data=data, headers=headers, **kwargs)


def _rows(*heights: float) -> str:
    return json.dumps({"rows": [{"height": h} for h in heights]})


# --- GET /api/weight ------------------------------------------------------------------------------------------


def test_weight_of_138_is_the_model_cards_golden_prediction(host: RunningHost) -> None:
    response = host.request("GET", "/api/weight?height=138")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Model-Version"] == MODEL_LABEL
    assert response.json() == {"response": [pytest.approx(GOLDEN[138.0], rel=EXACT)]}


def test_weight_agrees_with_a_line_refit_from_the_shipped_training_data(host: RunningHost) -> None:
    # The refit means something only if the shipped model was trained on exactly this file.
    assert hashlib.sha256(DATA_CSV.read_bytes()).hexdigest() == CARD["training_data_sha256"]
    slope, intercept = _refit_line()
    heights = [140.0, 155.5, 170.0, 185.0, 200.0]
    served = _weights(host, "height=" + ",".join(map(str, heights)))
    # The model saw an 80 % split, the refit every row: they differ by the line's sampling error (~0.2 kg
    # here), far below what a wrong model would show (a wrong slope or unit moves them by kilograms).
    assert served == pytest.approx([slope * h + intercept for h in heights], abs=0.5)
    assert (served[-1] - served[0]) / (heights[-1] - heights[0]) == pytest.approx(slope, abs=0.02)


def test_heights_between_golden_points_lie_on_the_cards_line(host: RunningHost) -> None:
    (x0, y0), (x1, y1) = min(GOLDEN.items()), max(GOLDEN.items())
    heights = [142.25, 172.5, 199.9]
    expected = [y0 + (y1 - y0) * (h - x0) / (x1 - x0) for h in heights]
    assert _weights(host, "height=" + ",".join(map(str, heights))) == pytest.approx(expected, rel=EXACT)


@pytest.mark.parametrize(
    ("query", "heights"),
    [
        ("height=150&height=180&height=200", [150.0, 180.0, 200.0]),
        ("height=150,180,200", [150.0, 180.0, 200.0]),
        ("height=150,180&height=200", [150.0, 180.0, 200.0]),
        ("height=150%2C180&height=200", [150.0, 180.0, 200.0]),
        ("height=200,%20150,138", [200.0, 150.0, 138.0]),
        ("height=1.38e2&height=+165.0", [138.0, 165.0]),
    ],
)
def test_several_heights_are_answered_in_the_order_asked(host: RunningHost, query: str, heights: list[float]) -> None:
    assert _weights(host, query) == pytest.approx([GOLDEN[h] for h in heights], rel=EXACT)


def test_key_in_the_code_parameter_works_like_the_original_curl(host: RunningHost) -> None:
    response = requests.get(f"{host.base_url}/api/weight?height=138&code={host.key}", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"response": [pytest.approx(GOLDEN[138.0], rel=EXACT)]}


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "height: missing; expected e.g. ?height=138"),
        ("weight=60", "height: missing"),
        ("height=", "height: expected a number such as 138, got an empty value"),
        ("height=tall", 'height: expected a number such as 138, got "tall"'),
        ("height=NaN", 'expected a number such as 138, got "NaN"'),
        ("height=inf", 'expected a number such as 138, got "inf"'),
        ("height=-Infinity", 'got "-Infinity"'),
        ("height=1e999", "height: expected a number with at most 100 digits before the point and an exponent of at"),
        ("height=0x8A", 'got "0x8A"'),
        ("height=150,,180", "height[1]: expected a number such as 138, got an empty value"),
        ("height=150&height=abc", 'height[1]: expected a number such as 138, got "abc"'),
    ],
)
def test_bad_weight_query_is_400_naming_the_parameter(host: RunningHost, query: str, fragment: str) -> None:
    response = host.request("GET", f"/api/weight?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["error"]


def test_concurrent_requests_each_get_their_own_answer(host: RunningHost) -> None:
    heights = [140.0 + i for i in range(32)]
    (x0, y0), (x1, y1) = min(GOLDEN.items()), max(GOLDEN.items())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda h: _weights(host, f"height={h}"), heights))
    expected = [[y0 + (y1 - y0) * (h - x0) / (x1 - x0)] for h in heights]
    assert answers == [pytest.approx(e, rel=EXACT) for e in expected]


# --- POST /api/score ------------------------------------------------------------------------------------------


def test_score_json_rows_name_the_model_and_match_the_golden_predictions(host: RunningHost) -> None:
    body = json.dumps({"rows": [{"height": 138, "id": "a"}, {"height": 165.0}, {"height": 200}]})
    response = _score(host, body)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Model-Version"] == MODEL_LABEL
    assert response.json() == {
        "model": {"name": CARD["name"], "version": CARD["version"]},
        "predictions": pytest.approx([GOLDEN[138.0], GOLDEN[165.0], GOLDEN[200.0]], rel=EXACT),
    }


def test_score_csv_echoes_the_rows_with_the_same_digits_as_weight(host: RunningHost) -> None:
    response = _score(host, 'id,height,note\np1,138,first\np2,180,"a, b"\np3,150.5,\n', "text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["X-Model-Version"] == MODEL_LABEL
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    assert reader.fieldnames == ["id", "height", "note", CARD["prediction_column"]]
    assert [(r["id"], r["height"], r["note"]) for r in rows] == [
        ("p1", "138", "first"),
        ("p2", "180", "a, b"),
        ("p3", "150.5", ""),
    ]
    # Real-time JSON and CSV answers print the same digits for the same heights (batch scoring relies on it).
    realtime = _weights(host, "height=138,180,150.5")
    assert [r[CARD["prediction_column"]] for r in rows] == [repr(v) for v in realtime]


def test_score_csv_from_a_spreadsheet_with_bom_and_crlf(host: RunningHost) -> None:
    response = _score(host, "\ufeffheight\r\n138\r\n200\r\n".encode(), "text/csv; charset=utf-8")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == f"height,{CARD['prediction_column']}"
    assert [float(line.split(",")[1]) for line in lines[1:]] == pytest.approx([GOLDEN[138.0], GOLDEN[200.0]], rel=EXACT)


def test_score_csv_answers_json_when_asked(host: RunningHost) -> None:
    response = _score(host, "height\n138\n", "text/csv", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["predictions"] == pytest.approx([GOLDEN[138.0]], rel=EXACT)
    assert response.json()["model"] == {"name": CARD["name"], "version": CARD["version"]}


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_score_accepts_exactly_max_rows(host: RunningHost, content_type: str) -> None:
    body = _rows(*[170] * MAX_ROWS) if content_type == "application/json" else "height\n" + "170\n" * MAX_ROWS
    response = _score(host, body, content_type, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == MAX_ROWS
    assert set(predictions) == {_weights(host, "height=170")[0]}


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"", "application/json", "rows: missing; expected an array of objects"),
        (b"", "text/csv", "body: expected a CSV header such as 'height'"),
        (b"{not json", "application/json", 'body: expected JSON such as {"rows": [{"height": 138}]}'),
        (b'[{"height": 138}]', "application/json", "body: expected a JSON object, got an array"),
        (b'{"rows": []}', "application/json", "rows: expected at least one item"),
        (b'{"rows": {"height": 138}}', "application/json", "rows: expected an array of objects, got an object"),
        (b'{"rows": [138]}', "application/json", 'rows[0]: expected a JSON object such as {"height": 138}, got 138'),
        (b'{"rows": [{"height": 150}, {"weight": 60}]}', "application/json", "rows[1].height: missing"),
        (b'{"rows": [{"height": "tall"}]}', "application/json", 'rows[0].height: expected a finite number, got "tall"'),
        (b'{"rows": [{"height": null}]}', "application/json", "rows[0].height: expected a finite number, got null"),
        (b'{"rows": [{"height": 150}, {"height": NaN}]}', "application/json", "rows[1].height: expected a finite"),
        (b'{"rows": [{"height": Infinity}]}', "application/json", "rows[0].height: expected a finite number, got Inf"),
        (b'{"rows": [{"height": 1e999}]}', "application/json", "rows[0].height: expected a finite number, got 1e999"),
        (b'{"rows": [{"height": 1, "x": NaN}]}', "application/json", "rows[0].x: expected a finite number, got NaN"),
        (
            _rows(*[170] * (MAX_ROWS + 1)).encode(),
            "application/json",
            f"rows: expected at most {MAX_ROWS} rows (upload a CSV for batch scoring), got {MAX_ROWS + 1}",
        ),
        (b"weight\n60\n", "text/csv", "body: expected a CSV header naming column 'height' once, got ['weight']"),
        (b"height\n", "text/csv", "body: expected one CSV row per prediction after the header, got none"),
        (b"height\n138\nnan\n", "text/csv", "CSV row 2, column 'height': expected a number such as 138, got \"nan\""),
        (b"id,height\n1,inf\n", "text/csv", "CSV row 1, column 'height': expected a number such as 138, got \"inf\""),
        (b"id,height\n1,\n", "text/csv", "CSV row 1, column 'height': expected a number such as 138, got an empty"),
        (
            ("height\n" + "170\n" * (MAX_ROWS + 1)).encode(),
            "text/csv",
            f"body: expected at most {MAX_ROWS} rows (upload a CSV for batch scoring), got {MAX_ROWS + 1}",
        ),
    ],
)
def test_bad_score_body_is_400_naming_the_field(
    host: RunningHost, body: bytes, content_type: str, fragment: str
) -> None:
    response = _score(host, body, content_type)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["error"]


def test_body_over_the_limit_is_413_and_at_the_limit_is_scored(host: RunningHost) -> None:
    rows = _rows(138)
    at_limit = rows + " " * (MAX_BODY - len(rows))
    assert _score(host, at_limit).json()["predictions"] == pytest.approx([GOLDEN[138.0]], rel=EXACT)
    response = _score(host, at_limit + " ")
    assert response.status_code == 413
    assert response.json()["error"] == (
        f"body: expected at most {MAX_BODY} bytes (SCORE_MAX_BODY_BYTES; upload large files for batch scoring), "
        f"got {MAX_BODY + 1}"
    )


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/weight?height=138"), ("POST", "/api/score")])
@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong-key"}])
def test_model_functions_need_the_function_key(
    host: RunningHost, method: str, path: str, headers: dict[str, str]
) -> None:
    response = host.request(method, path, key=False, headers=headers, data=_rows(138))
    assert response.status_code == 401
    assert "predictions" not in response.text and "response" not in response.json()


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/weight?height=138"), ("GET", "/api/score")])
def test_wrong_method_is_405(host: RunningHost, method: str, path: str) -> None:
    assert host.request(method, path).status_code == 405


# --- a model that cannot be loaded ------------------------------------------------------------------------------


def test_missing_model_directory_is_500_with_a_clear_message_and_the_cause_in_the_log(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    broken = start_devhost(tmp_path / "host", {**APP_SETTINGS, "MODEL_URI": str(missing)}, workers=1)
    try:
        weight = broken.request("GET", "/api/weight?height=138")
        score = _score(broken, _rows(138))
        # Input is still checked before the model is needed, so a caller's mistake stays a 400.
        bad_input = broken.request("GET", "/api/weight?height=tall")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and str(missing) not in broken.log_text():
            time.sleep(0.1)
        log = broken.log_text()
    finally:
        broken.stop()
    for response in (weight, score):
        assert response.status_code == 500
        assert response.headers["Content-Type"].startswith("application/json")
        error = response.json()["error"]
        assert "scoring is unavailable" in error and "model" in error and "logs" in error
        # Nothing internal reaches the caller: no path, no setting value, no stack trace.
        assert str(tmp_path) not in response.text
        assert "Traceback" not in response.text and "UseDevelopmentStorage" not in response.text
    assert bad_input.status_code == 400
    assert f"model directory {missing} does not exist" in log
    assert f"GET /api/weight failed: model directory {missing} does not exist" in log
    assert f"POST /api/score failed: model directory {missing} does not exist" in log
