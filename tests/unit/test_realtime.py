"""Real-time scoring: request parsing tables, answers, and the /api/weight and /api/score functions called
directly with real func.HttpRequest objects (no Functions host)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import numpy as np
import pytest

from shared.errors import InputError, PayloadTooLargeError, RequestFieldError
from shared.scoring.model import clear_model_cache, load_model
from shared.web import realtime
from shared.web.answers import error_answer
from triggers import model_http

FEATURES = ("height",)
MAX = 1024 * 1024


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(model_http.bp)
    return {f.get_function_name(): f for f in app.get_functions()}


@pytest.fixture(autouse=True)
def fresh_model_cache():
    clear_model_cache()
    yield
    clear_model_cache()


def get_weight(functions, query: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", f"http://127.0.0.1:7071/api/weight?{query}", body=b"")
    response: func.HttpResponse = functions["weight"].get_user_function()(request)
    return response


def post_score(functions, body: bytes, content_type: str | None = None, accept: str | None = None):
    headers = {k: v for k, v in (("content-type", content_type), ("accept", accept)) if v}
    request = func.HttpRequest("POST", "http://127.0.0.1:7071/api/score", headers=headers, body=body)
    return functions["score"].get_user_function()(request)


# --- GET /api/weight query parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "heights"),
    [
        ("height=138", [138.0]),
        ("height=138&code=secret-key", [138.0]),
        ("height=150&height=180", [150.0, 180.0]),
        ("height=150,180", [150.0, 180.0]),
        ("height=150,%20180&height=165.5", [150.0, 180.0, 165.5]),
        ("height=1.75e2", [175.0]),
        ("height=-5", [-5.0]),
        ("height=.5", [0.5]),
    ],
)
def test_weight_query_accepts_one_or_several_heights_in_order(query: str, heights: list[float]) -> None:
    assert realtime.parse_weight_query(f"http://h/api/weight?{query}").tolist() == heights


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            "",
            "height",
            "height: missing; expected e.g. ?height=138 (several: ?height=150&height=180 or ?height=150,180)",
        ),
        ("code=abc", "height", "height: missing; expected e.g. ?height=138"),
        ("Height=138", "height", "height: missing"),
        ("height=", "height", "height: expected a number such as 138, got an empty value"),
        ("height=abc", "height", 'height: expected a number such as 138, got "abc"'),
        ("height=nan", "height", 'got "nan"'),
        ("height=inf", "height", 'got "inf"'),
        ("height=-Infinity", "height", 'got "-Infinity"'),
        ("height=1e999", "height", 'an exponent of at most 99, got "1e999" (out of range)'),
        ("height=1e100", "height", 'got "1e100" (out of range)'),
        ("height=0x10", "height", 'got "0x10"'),
        ("height=1_000", "height", 'got "1_000"'),
        ("height=138cm", "height", 'got "138cm"'),
        ("height=150,,180", "height[1]", "height[1]: expected a number such as 138, got an empty value"),
        ("height=150&height=x", "height[1]", 'height[1]: expected a number such as 138, got "x"'),
        (
            "height=" + ",".join(["1"] * (realtime.MAX_ROWS + 1)),
            "height",
            f"height: expected at most {realtime.MAX_ROWS} rows (upload a CSV for batch scoring), got 10001",
        ),
    ],
)
def test_weight_query_rejects_bad_input_naming_the_field(query: str, field: str, message: str) -> None:
    with pytest.raises(RequestFieldError) as caught:
        realtime.parse_weight_query(f"http://h/api/weight?{query}")
    assert caught.value.field == field
    assert message in str(caught.value)
    assert error_answer(caught.value).status == 400


# --- POST /api/score body parsing -------------------------------------------------------------------------


def test_json_rows_become_feature_columns_ignoring_other_keys() -> None:
    body = json.dumps({"rows": [{"height": 138}, {"height": 150.5, "id": "b"}]}).encode()
    parsed = realtime.parse_score_body(body, "application/json", FEATURES, MAX)
    assert parsed.rows == 2
    assert parsed.columns["height"].tolist() == [138.0, 150.5]
    assert parsed.columns["height"].dtype == np.float64
    assert not parsed.is_csv


def test_csv_body_is_read_with_bom_crlf_quotes_and_extra_columns() -> None:
    body = '\ufeffid,height,note\r\n1,138,"a, b"\r\n\r\n2, 150 ,c\r\n'.encode()
    parsed = realtime.parse_score_body(body, "text/csv; charset=utf-8", FEATURES, MAX)
    assert parsed.columns["height"].tolist() == [138.0, 150.0]
    assert parsed.csv_header == ("id", "height", "note")
    assert parsed.csv_rows[0] == ("1", "138", "a, b")


def test_missing_content_type_is_read_as_json() -> None:
    parsed = realtime.parse_score_body(b'{"rows": [{"height": 1}]}', None, FEATURES, MAX)
    assert parsed.columns["height"].tolist() == [1.0]


TOO_MANY_JSON = json.dumps({"rows": [{"height": 1}] * (realtime.MAX_ROWS + 1)}).encode()
TOO_MANY_CSV = ("height\n" + "1\n" * (realtime.MAX_ROWS + 1)).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"", "application/json", "rows: missing; expected an array of objects"),
        (b"  \n ", None, "rows: missing"),
        (b"{not json", "application/json", 'body: expected JSON such as {"rows": [{"height": 138}]} (or send'),
        (b"\xff\xfe", "application/json", "body: expected UTF-8 JSON such as"),
        (b"[1, 2]", "application/json", "body: expected a JSON object, got an array"),
        (b'{"row": []}', "application/json", "rows: missing; expected an array of objects"),
        (b'{"rows": {"height": 1}}', "application/json", "rows: expected an array of objects, got an object"),
        (b'{"rows": []}', "application/json", "rows: expected at least one item (or leave the field out)"),
        (b'{"rows": [138]}', "application/json", 'rows[0]: expected a JSON object such as {"height": 138}, got 138'),
        (b'{"rows": [{"height": 1}, {"weight": 2}]}', None, "rows[1].height: missing; expected a finite number"),
        (b'{"rows": [{"height": "138"}]}', None, 'rows[0].height: expected a finite number, got "138"'),
        (b'{"rows": [{"height": true}]}', None, "rows[0].height: expected a finite number, got true"),
        (b'{"rows": [{"height": null}]}', None, "rows[0].height: expected a finite number, got null"),
        (b'{"rows": [{"height": NaN}]}', None, "rows[0].height: expected a finite number, got NaN"),
        (b'{"rows": [{"height": -Infinity}]}', None, "rows[0].height: expected a finite number, got -Infinity"),
        (b'{"rows": [{"height": 1e999}]}', None, "rows[0].height: expected a finite number, got 1e999"),
        (b'{"rows": [{"height": 1' + b"0" * 400 + b"}]}", None, "rows[0].height: expected a finite number, got an"),
        (TOO_MANY_JSON, None, f"rows: expected at most {realtime.MAX_ROWS} rows (upload a CSV for batch scoring)"),
        (
            b"id,weight\n1,2\n",
            "text/csv",
            "body: expected a CSV header naming column 'height' once, got ['id', 'weight']",
        ),
        (b" , \n", "text/csv", "body: expected a CSV header such as 'height'"),
        (b"height\n", "text/csv", "body: expected one CSV row per prediction after the header, got none"),
        (b"height,height\n1,2\n", "text/csv", "naming column 'height' once, got ['height', 'height']"),
        (b"id,height\n1,138\n2,abc\n", "text/csv", "CSV row 2, column 'height': expected a number such as 138"),
        (b"id,height\n1,nan\n", "text/csv", "CSV row 1, column 'height': expected a number such as 138, got \"nan\""),
        (b"id,height\n1,\n", "text/csv", "CSV row 1, column 'height': expected a number such as 138, got an empty"),
        (b"id,height\n1\n", "text/csv", "CSV row 1: expected 2 fields like the header, got 1"),
        (b"height\n\xff\n", "text/csv", "body: expected UTF-8 CSV text, got a byte 0xff"),
        (TOO_MANY_CSV, "text/csv", f"body: expected at most {realtime.MAX_ROWS} rows"),
    ],
)
def test_score_body_rejects_bad_input_with_a_400_message(body: bytes, content_type: str | None, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        realtime.parse_score_body(body, content_type, FEATURES, 10 * MAX)
    assert fragment in str(caught.value)
    assert error_answer(caught.value).status == 400


def test_body_over_the_limit_is_413_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        realtime.parse_score_body(b"x" * 101, "application/json", FEATURES, 100)
    assert error_answer(caught.value).status == 413
    assert str(caught.value) == (
        "body: expected at most 100 bytes (SCORE_MAX_BODY_BYTES; upload large files for batch scoring), got 101"
    )


def test_csv_answer_echoes_input_columns_and_replaces_an_old_prediction_column() -> None:
    body = b'id,predicted_weight,height\n"x,1",0,138\n'
    parsed = realtime.parse_score_body(body, "text/csv", FEATURES, MAX)
    text, mimetype = realtime.score_answer(
        parsed, np.array([39.5]), name="m", version="1", prediction_column="predicted_weight", accept=None
    )
    assert mimetype == "text/csv"
    assert list(csv.reader(io.StringIO(text))) == [
        ["id", "height", "predicted_weight"],
        ["x,1", "138", "39.5"],
    ]
    text, mimetype = realtime.score_answer(
        parsed, np.array([39.5]), name="m", version="1", prediction_column="p", accept="application/json"
    )
    assert (mimetype, json.loads(text)) == (
        "application/json",
        {"model": {"name": "m", "version": "1"}, "predictions": [39.5]},
    )


# --- the functions, called directly --------------------------------------------------------------------


def test_functions_are_registered_with_their_routes_and_function_auth(functions) -> None:
    for name, method in (("weight", "GET"), ("score", "POST")):
        (binding,) = [b for b in json.loads(functions[name].get_function_json())["bindings"] if b["direction"] == "IN"]
        assert (binding["route"], binding["methods"], binding["authLevel"]) == (name, [method], "FUNCTION")


def test_weight_answers_the_original_contract_from_the_shipped_model(functions) -> None:
    model = load_model()
    response = get_weight(functions, "height=138&height=150,180&code=k")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    expected = model.predict({"height": np.array([138.0, 150.0, 180.0])}).tolist()
    assert json.loads(response.get_body()) == {"response": expected}
    assert response.headers["X-Model-Version"] == f"height-weight/{model.card.version}"
    # The card's golden value for 138 was recorded at training time: the endpoint serves that model.
    golden = {row["height"]: row["predicted_weight"] for row in model.card.golden}
    assert json.loads(response.get_body())["response"][0] == golden[138.0]


def test_realtime_prints_the_same_digits_as_a_whole_column_prediction(functions) -> None:
    heights = np.linspace(120.0, 210.0, 50_001)
    column = load_model().predict({"height": heights}).tolist()
    for index in (0, 1, 12_345, 33_333, 50_000):
        text = get_weight(functions, f"height={float(heights[index])!r}").get_body().decode()
        assert text == f'{{"response": [{column[index]!r}]}}'


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("", "height: missing; expected e.g. ?height=138"), ("height=abc", 'got "abc"'), ("height=NaN", 'got "NaN"')],
)
def test_weight_bad_input_is_a_400_json_error(functions, query: str, fragment: str) -> None:
    response = get_weight(functions, query)
    assert (response.status_code, response.mimetype) == (400, "application/json")
    assert fragment in json.loads(response.get_body())["error"]


def test_score_json_rows_answer_json_with_the_model_name_and_version(functions) -> None:
    model = load_model()
    response = post_score(functions, b'{"rows": [{"height": 138}, {"height": 180}]}', "application/json")
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {
        "model": {"name": "height-weight", "version": model.card.version},
        "predictions": model.predict({"height": np.array([138.0, 180.0])}).tolist(),
    }
    assert response.headers["X-Model-Version"] == model.card.label


def test_score_csv_answers_csv_with_the_prediction_column(functions) -> None:
    response = post_score(functions, b"id,height\na,138\nb,180\n", "text/csv")
    assert (response.status_code, response.mimetype) == (200, "text/csv")
    rows = list(csv.DictReader(io.StringIO(response.get_body().decode())))
    assert [(r["id"], r["height"]) for r in rows] == [("a", "138"), ("b", "180")]
    golden = {row["height"]: row["predicted_weight"] for row in load_model().card.golden}
    assert float(rows[0]["predicted_weight"]) == golden[138.0]


@pytest.mark.parametrize(
    "case",
    [
        (b"", "application/json", 400, "rows: missing"),
        (b'{"rows": [{"height": "x"}]}', "application/json", 400, "rows[0].height: expected a finite number"),
        (b"weight\n1\n", "text/csv", 400, "naming column 'height' once"),
        (b'{"rows": [' + b'{"height": 1},' * 40 + b'{"height": 1}]}', "application/json", 413, "at most 500 bytes"),
    ],
)
def test_score_bad_input_is_a_json_error(functions, monkeypatch, case) -> None:
    body, content_type, status, fragment = case
    monkeypatch.setenv("SCORE_MAX_BODY_BYTES", "500")
    response = post_score(functions, body, content_type)
    assert (response.status_code, response.mimetype) == (status, "application/json")
    assert fragment in json.loads(response.get_body())["error"]


def test_a_broken_model_setting_is_a_500_json_error_not_a_crash(functions, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MODEL_URI", str(tmp_path / "no-such-model"))
    for response in (
        get_weight(functions, "height=138"),
        post_score(functions, b'{"rows": [{"height": 1}]}'),
    ):
        assert response.status_code == 500
        assert "scoring is unavailable" in json.loads(response.get_body())["error"]
