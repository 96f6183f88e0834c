"""The app's JSON body parser: number extremes become an InputError naming the field, never a ValueError."""

from __future__ import annotations

import json
import sys

import pytest

from shared import json_body
from shared.errors import InputError, RequestFieldError
from shared.settings import ShutdownSettings
from shared.web.inputs import parse_scoring_body, parse_shutdown_body
from shared.web.realtime import parse_score_body

BIG = "9" * 5000

CASES = {
    "integer past the digit limit": (f'{{"rows": [{{"height": 1}}, {{"height": {BIG}}}]}}', "rows[1].height"),
    "negative integer past the limit": (f'{{"a": {{"b c": [-{BIG}]}}}}', 'a["b c"][0]'),
    "float overflowing to inf": ('{"rows": [{"height": 1e400}]}', "rows[0].height"),
    "NaN literal": ('{"x": [1, NaN]}', "x[1]"),
    "-Infinity literal": ('{"x": -Infinity}', "x"),
    "the whole body": (BIG, "body"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_number_extremes_name_their_field(case: str) -> None:
    text, field = CASES[case]
    with pytest.raises(json_body.JsonNumberError) as caught:
        json_body.loads(text.encode())
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, InputError)


def test_the_first_extreme_in_document_order_is_named() -> None:
    with pytest.raises(json_body.JsonNumberError) as caught:
        json_body.loads(f'{{"a": [1, 2, {{"b": 1e999}}], "c": NaN, "d": {BIG}}}')
    assert caught.value.field == "a[2].b"
    assert str(caught.value) == "a[2].b: expected a finite number, got 1e999 (beyond a 64-bit float)"


def test_the_digit_limit_message_says_how_many_digits() -> None:
    limit = sys.get_int_max_str_digits()
    with pytest.raises(
        json_body.JsonNumberError,
        match=f"^n: expected a finite number, got an integer of 5000 digits \\(beyond the parser's limit of {limit} ",
    ):
        json_body.loads(f'{{"n": {BIG}}}')


def test_ordinary_json_parses_as_json_loads_does() -> None:
    text = '{"a": [1, -2, 3.5, 1e300, "x", null, true], "b": {"c": 12345678901234567890}, "d": "%s"}' % ("9" * 4300)
    assert json_body.loads(text) == json.loads(text)
    assert json_body.loads(b"9" * 4300) == int("9" * 4300)


def test_invalid_json_still_raises_the_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        json_body.loads(b'{"a": ')


def test_every_app_body_parser_answers_an_input_error_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"^force: expected a finite number, got an integer of 5000 digits"):
        parse_scoring_body(f'{{"container": "incoming", "name": "a.csv", "force": {BIG}}}'.encode(), "incoming")
    with pytest.raises(InputError, match=r"^rows\[0\]\.height: expected a finite number, got 1e400"):
        parse_score_body(b'{"rows": [{"height": 1e400}]}', "application/json", ["height"], 1 << 20)
    settings = ShutdownSettings.from_env(
        {"AML_WORKSPACES": "sub/rg/ws", "SHUTDOWN_SCHEDULE": "0 0 22 * * *"}  # the minimum the app needs
    )
    with pytest.raises(RequestFieldError) as caught:
        parse_shutdown_body(f'{{"dry_run": {BIG}}}', settings)
    assert caught.value.field == "dry_run"
    assert caught.value.to_dict()["error"].startswith("dry_run: expected a finite number, got an integer of 5000")
