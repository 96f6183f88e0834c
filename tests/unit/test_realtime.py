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

from shared.errors import InputError
from shared.scoring import realtime
from shared.scoring.model import clear_model_cache, load_model
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
    ("query", "fragment"),
    [
        ("", "query parameter 'height' is missing"),
        ("code=abc", "query parameter 'height' is missing"),
        ("Height=138", "query parameter 'height' is missing"),
        ("height=", "query parameter 'height': empty value"),
        ("height=abc", "expected a finite number such as 138, got 'abc'"),
        ("height=nan", "got 'nan'"),
        ("height=inf", "got 'inf'"),
        ("height=-Infinity", "got '-Infinity'"),
        ("height=1e999", "'1e999' is out of range"),
        ("height=0x10", "got '0x10'"),
        ("height=1_000", "got '1_000'"),
        ("height=138cm", "got '138cm'"),
        ("height=150,,180", "query parameter 'height' (value 2): empty value"),
        ("height=150&height=x", "query parameter 'height' (value 2): expected a finite number"),
        ("height=" + ",".join(["1"] * (realtime.MAX_ROWS + 1)), f"at most {realtime.MAX_ROWS} per request"),
    ],
)
def test_weight_query_rejects_bad_input_naming_the_field(query: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        realtime.parse_weight_query(f"http://h/api/weight?{query}")
    assert fragment in str(caught.value)
    assert realtime.error_status(caught.value) == 400


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
        (b"", "application/json", "empty body: expected JSON such as"),
        (b"  \n ", None, "empty body"),
        (b"{not json", "application/json", "body is not valid JSON"),
        (b"\xff\xfe", "application/json", "body is not valid JSON"),
        (b"[1, 2]", "application/json", "field 'rows' is missing"),
        (b'{"row": []}', "application/json", "field 'rows' is missing"),
        (b'{"rows": {"height": 1}}', "application/json", "field 'rows': expected a non-empty list"),
        (b'{"rows": []}', "application/json", "field 'rows': expected a non-empty list"),
        (b'{"rows": [138]}', "application/json", "rows[0]: expected an object"),
        (
            b'{"rows": [{"height": 1}, {"weight": 2}]}',
            None,
            "rows[1].height is missing: expected a finite number",
        ),
        (b'{"rows": [{"height": "138"}]}', None, 'rows[0].height: expected a finite number, got "138"'),
        (b'{"rows": [{"height": true}]}', None, "rows[0].height: expected a finite number, got true"),
        (b'{"rows": [{"height": null}]}', None, "rows[0].height: expected a finite number, got null"),
        (b'{"rows": [{"height": NaN}]}', None, "body contains NaN"),
        (b'{"rows": [{"height": -Infinity}]}', None, "body contains -Infinity"),
        (b'{"rows": [{"height": 1e999}]}', None, "rows[0].height: 1e999 is out of range"),
        (b'{"rows": [{"height": 1' + b"0" * 400 + b"}]}", None, "rows[0].height: 1000"),
        (TOO_MANY_JSON, None, f"field 'rows': {realtime.MAX_ROWS + 1} rows, at most {realtime.MAX_ROWS}"),
        (b"id,weight\n1,2\n", "text/csv", "CSV header ['id', 'weight'] lacks column 'height'"),
        (b" , \n", "text/csv", "CSV body has no header row"),
        (b"height\n", "text/csv", "CSV body has a header but no rows"),
        (b"height,height\n1,2\n", "text/csv", "names column 'height' twice"),
        (b"id,height\n1,138\n2,abc\n", "text/csv", "CSV row 2, column 'height': expected a finite number"),
        (b"id,height\n1,nan\n", "text/csv", "CSV row 1, column 'height': expected a finite number"),
        (b"id,height\n1,\n", "text/csv", "CSV row 1, column 'height': empty value"),
        (b"id,height\n1\n", "text/csv", "CSV row 1 has 1 fields, expected 2"),
        (b"height\n\xff\n", "text/csv", "CSV body is not UTF-8"),
        (TOO_MANY_CSV, "text/csv", f"CSV body: {realtime.MAX_ROWS + 1} rows, at most {realtime.MAX_ROWS}"),
    ],
)
def test_score_body_rejects_bad_input_with_a_400_message(body: bytes, content_type: str | None, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        realtime.parse_score_body(body, content_type, FEATURES, 10 * MAX)
    assert fragment in str(caught.value)
    assert realtime.error_status(caught.value) == 400


def test_body_over_the_limit_is_413_before_parsing() -> None:
    with pytest.raises(realtime.PayloadTooLargeError) as caught:
        realtime.parse_score_body(b"x" * 101, "application/json", FEATURES, 100)
    assert realtime.error_status(caught.value) == 413
    assert "101 bytes is larger than the limit of 100 bytes (SCORE_MAX_BODY_BYTES)" in str(caught.value)


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
    [("", "query parameter 'height' is missing"), ("height=abc", "got 'abc'"), ("height=NaN", "got 'NaN'")],
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
        (b"", "application/json", 400, "empty body"),
        (b'{"rows": [{"height": "x"}]}', "application/json", 400, "rows[0].height: expected a finite number"),
        (b"weight\n1\n", "text/csv", 400, "lacks column 'height'"),
        (b'{"rows": [' + b'{"height": 1},' * 40 + b'{"height": 1}]}', "application/json", 413, "larger than"),
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
