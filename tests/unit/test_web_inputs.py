"""Every HTTP input read by one parser in one wording, mapped to one kind of answer, and accepted exactly when the
published OpenAPI document says it is valid (values generated from the document's own patterns and around them).

The document is validated with jsonschema-rs, whose regexes follow ECMA-262 as JSON Schema means them (and as
schemathesis reads them): `$` is the end of the text and `[0-9]` never matches other scripts' digits.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app  # noqa: F401  (registers the app that triggers.openapi documents)
from shared.errors import (
    AppError,
    InputError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RequestFieldError,
    SettingsError,
    StorageError,
)
from shared.settings import ShutdownSettings
from shared.web import contract, inputs, realtime
from shared.web.answers import SETTINGS_BROKEN, error_answer
from triggers import openapi as openapi_trigger

ENV = {
    "AML_WORKSPACES": "sub-1/rg-dev/ws-research,sub-1/rg-prod/ws-prod,sub-2/rg-x/ws-prod",
    "SHUTDOWN_SCHEDULE": "0 0 22 * * *",
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    "SCORING_INPUT_CONTAINER": "uploads",
    "SCORING_OUTPUT_CONTAINER": "scored",
    "SCORING_ERRORS_CONTAINER": "bad-rows",
}
SETTINGS = ShutdownSettings.from_env(ENV)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        response = openapi_trigger.openapi(func.HttpRequest("GET", "/api/openapi.json", body=b""))
    body: dict[str, Any] = json.loads(response.get_body())
    return body


def _body_validator(document: dict[str, Any], model: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def _parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    operation = next(iter(document["paths"][path].values()))
    parameter: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)
    return parameter


def _accepts(read: Callable[[str], object], value: str) -> bool:
    try:
        read(value)
    except RequestFieldError:
        return False
    return True


# --- one body parser, one wording ------------------------------------------------------------------------------

READERS: dict[str, Callable[[bytes], object]] = {
    "shutdown": lambda body: inputs.parse_shutdown_body(body, SETTINGS),
    "preview": inputs.parse_preview_body,
    "reconcile": inputs.parse_reconcile_body,
    "scoring": lambda body: inputs.parse_scoring_body(body, "uploads"),
    "score": lambda body: realtime.parse_score_body(body, "application/json", ("height",), 1 << 20),
}
BAD_BODIES = {
    "not UTF-8": (b'{"a": "\xff"}', "body", "body: expected UTF-8 JSON such as "),
    "not JSON": (b"{x", "body", "body: expected JSON such as "),
    "not an object": (b"[1]", "body", "body: expected a JSON object, got an array"),
    "too deep": (b"[" * 100_000 + b"]" * 100_000, "body", "body: expected JSON such as "),
    "NaN": (b'{"a": [NaN]}', "a[0]", "a[0]: expected a finite number, got NaN (JSON has no NaN or Infinity)"),
}


@pytest.mark.parametrize("endpoint", READERS)
@pytest.mark.parametrize("case", BAD_BODIES)
def test_every_body_is_read_by_one_parser_with_one_wording(endpoint: str, case: str) -> None:
    body, field, start = BAD_BODIES[case]
    with pytest.raises(RequestFieldError) as refused:
        READERS[endpoint](body)
    assert (refused.value.field, str(refused.value)[: len(start)]) == (field, start)


WRONG_FIELDS = [
    ("shutdown", b'{"dry_run": "yes"}', "dry_run", 'dry_run: expected true or false, got "yes"'),
    ("shutdown", b'{"dryrun": true}', "dryrun", "dryrun: unknown field; accepted fields: dry_run, workspaces,"),
    ("preview", b"", "at", "at: missing; expected an RFC 3339 date-time with an offset in the years 1970..2999"),
    ("preview", b'{"at": 5}', "at", "at: expected an RFC 3339 date-time with an offset in the years 1970..2999, e."),
    ("reconcile", b'{"dry_run": 1}', "dry_run", "dry_run: expected true or false, got 1"),
    ("scoring", b'{"container": "uploads"}', "name", "name: missing; expected a blob name ending in .csv, without"),
    ("scoring", b'{"container": "x", "name": "a.csv"}', "container", "container: expected one of the containers"),
    ("score", b'{"rows": [{"height": "x"}]}', "rows[0].height", 'rows[0].height: expected a finite number, got "x"'),
]


@pytest.mark.parametrize(("endpoint", "body", "field", "start"), WRONG_FIELDS)
def test_a_wrong_field_is_named_first_then_what_was_expected(
    endpoint: str, body: bytes, field: str, start: str
) -> None:
    with pytest.raises(RequestFieldError) as refused:
        READERS[endpoint](body)
    assert refused.value.field == field
    assert str(refused.value).startswith(start)
    assert re.match(rf"^{re.escape(field)}: (expected|missing|unknown field)", str(refused.value))


def test_an_empty_body_takes_the_settings_where_every_field_is_optional() -> None:
    for body in (None, b"", b"  \n", b"{}"):
        assert inputs.parse_shutdown_body(body, SETTINGS).workspaces == tuple(w.key for w in SETTINGS.workspaces)
        assert inputs.parse_reconcile_body(body) is False


# --- one mapping from errors to answers ------------------------------------------------------------------------

ANSWERS: list[tuple[AppError, int, dict[str, str]]] = [
    (RequestFieldError("at", "at: expected X, got 5"), 400, {"error": "at: expected X, got 5", "field": "at"}),
    (InputError("CSV row 2: expected 2 fields"), 400, {"error": "CSV row 2: expected 2 fields"}),
    (PayloadTooLargeError("body: expected at most 1 bytes"), 413, {"error": "body: expected at most 1 bytes"}),
    (NotFoundError("blob uploads/a.csv does not exist"), 404, {"error": "blob uploads/a.csv does not exist"}),
    (SettingsError("AML_WORKSPACES: secret details"), 500, {"error": SETTINGS_BROKEN}),
    (
        ModelError("models/x: no card"),
        500,
        {"error": "scoring is unavailable: the model or its settings failed to load"},
    ),
    (StorageError("blob storage could not read reports/x: AuthorizationFailure (HTTP 403)"), 502, {}),
]


@pytest.mark.parametrize(("error", "status", "body"), ANSWERS, ids=[type(a[0]).__name__ for a in ANSWERS])
def test_each_kind_of_error_has_one_answer(error: AppError, status: int, body: dict[str, str]) -> None:
    answer = error_answer(error)
    assert answer.status == status
    assert answer.operators == (status >= 500)
    if body.get("error", "").startswith("scoring is unavailable"):
        assert answer.body["error"].startswith(body["error"])
    elif body:
        assert answer.body == body
    else:
        assert answer.body == {"error": str(error)}  # storage: names the blob and the code, nothing secret
    assert "secret details" not in json.dumps(answer.body)


# --- `at`: RFC 3339 exactly, within the years the API takes ----------------------------------------------------

AT_ACCEPTED = {
    "2026-11-30T08:00:20+01:00": datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC),
    "2026-11-30t07:00:20z": datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC),  # RFC 3339 5.6: lower case allowed
    "2026-11-30T07:00:20.123456789Z": datetime(2026, 11, 30, 7, 0, 20, 123456, tzinfo=UTC),
    "2026-11-30T07:00:20-00:00": datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC),
    "2028-02-29T12:00:00Z": datetime(2028, 2, 29, 12, tzinfo=UTC),
    "2000-02-29T12:00:00Z": datetime(2000, 2, 29, 12, tzinfo=UTC),
    "1970-01-01T00:00:00+23:59": datetime(1970, 1, 1, tzinfo=UTC) - timedelta(hours=23, minutes=59),
    "2999-12-31T23:59:59-23:59": datetime(3000, 1, 1, 23, 58, 59, tzinfo=UTC),
}
AT_REFUSED = [
    "2026-11-30 08:00:00+01:00",  # space separator
    "2026-W48-1T08:00:00Z",  # week date
    "20261130T080000Z",  # basic format
    "2026-11-30T08:00:00+01:00:30",  # seconds in the offset
    "2026-11-30T08Z",  # hour only
    "2026-11-30T08:00Z",  # no seconds
    "2026-11-30T08:00:00",  # no offset
    "2026-11-30T08:00:00+0100",  # offset without a colon
    "2026-11-30T24:00:00Z",
    "2026-12-31T23:59:60Z",  # a leap second
    "2026-02-29T12:00:00Z",  # not a leap year
    "2100-02-29T12:00:00Z",  # not a leap year either
    "2026-04-31T12:00:00Z",
    "0001-01-01T00:00:00Z",  # year 1 (the preview answered 500 OverflowError)
    "9999-12-31T23:59:59Z",  # year 9999 (the same)
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "２０２６-11-30T08:00:00Z",  # full-width digits
    "2026-11-30T08:00:00Z\n",
    "",
]


@pytest.mark.parametrize("value", list(AT_ACCEPTED))
def test_preview_at_takes_rfc_3339_date_times(value: str) -> None:
    assert inputs.parse_preview_body(json.dumps({"at": value}).encode()) == AT_ACCEPTED[value]


@pytest.mark.parametrize("value", AT_REFUSED)
def test_preview_at_refuses_what_rfc_3339_or_the_year_range_refuses(value: str, document: dict[str, Any]) -> None:
    with pytest.raises(RequestFieldError) as refused:
        inputs.parse_preview_body(json.dumps({"at": value}).encode())
    assert refused.value.field == "at"
    assert str(refused.value) == f"at: expected {contract.AT_EXPECTED}, got {json.dumps(value)}"
    assert not _body_validator(document, "PreviewBody").is_valid({"at": value})


# --- the document and the readers agree on every value ---------------------------------------------------------

_NOISE = st.text(alphabet=st.sampled_from("0123456789-:.TtZz+ ,/\\.cvsCSV\x00\nabé２"), max_size=30)


def _around(pattern: str) -> st.SearchStrategy[str]:
    """Values from the pattern itself, the same with a character changed, added or dropped, and noise."""
    valid = st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True)

    def mutate(value: str, where: int, char: str, how: int) -> str:
        i = where % (len(value) + 1)
        return [value[:i] + char + value[i + 1 :], value[:i] + char + value[i:], value[:i] + value[i + 1 :]][how]

    mutated = st.builds(mutate, valid, st.integers(0, 60), st.sampled_from("0:9-Z.a/ \n\x00２"), st.integers(0, 2))
    return st.one_of(valid, mutated, _NOISE)


Reader = Callable[[str], object]
Validity = Callable[[dict[str, Any]], Callable[[Any], bool]]


def _weight(value: str) -> object:
    return realtime.parse_weight_query("http://h/api/weight?" + urllib.parse.urlencode({"height": value}))


def _param_validator(path: str, name: str, *, array: bool = False) -> Validity:
    def of(document: dict[str, Any]) -> Callable[[Any], bool]:
        check = jsonschema_rs.Draft202012Validator(_parameter(document, path, name)["schema"]).is_valid
        return (lambda v: check([v])) if array else check

    return of


AGREEMENT: dict[str, tuple[str, Validity, Reader]] = {
    "at": (
        contract.AT_PATTERN,
        lambda d: lambda v: _body_validator(d, "PreviewBody").is_valid({"at": v}),
        lambda v: inputs.parse_preview_body(json.dumps({"at": v}).encode()),
    ),
    "month": (
        contract.MONTH_PATTERN,
        _param_validator("/api/savings", "month"),
        inputs.parse_month,
    ),
    "run": (
        contract.RUN_PATTERN,
        _param_validator("/api/dashboard", "run"),
        inputs.parse_run,
    ),
    "download": (
        contract.download_pattern(("scored", "bad-rows")),
        _param_validator("/api/dashboard", "download"),
        lambda v: inputs.parse_download(v, ("scored", "bad-rows")),
    ),
    "height": (contract.HEIGHTS_PATTERN, _param_validator("/api/weight", "height", array=True), _weight),
    "scoring name": (
        contract.SCORING_NAME_PATTERN,
        lambda d: lambda v: _body_validator(d, "ScoringBody").is_valid({"container": "uploads", "name": v}),
        lambda v: inputs.parse_scoring_body(json.dumps({"container": "uploads", "name": v}).encode(), "uploads"),
    ),
}


@pytest.mark.parametrize("name", AGREEMENT)
def test_the_readers_accept_exactly_what_the_published_document_calls_valid(
    name: str, document: dict[str, Any]
) -> None:
    pattern, validator_of, read = AGREEMENT[name]
    valid = validator_of(document)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=_around(pattern))
    def agree(value: str) -> None:
        assert _accepts(read, value) == bool(valid(value)), value

    agree()


def test_the_configured_values_are_in_the_document_and_the_readers_accept_exactly_them(
    document: dict[str, Any],
) -> None:
    items = document["components"]["schemas"]["ShutdownBody"]["properties"]["workspaces"]["items"]
    # Keys, and names that are not ambiguous (ws-prod is in two resource groups), in any case (ARM compares names
    # without case, and users always could): nothing else. The document says so with a pattern, not an enum.
    pattern = re.compile(items["pattern"])
    configured = ["sub-1/rg-dev/ws-research", "sub-1/rg-prod/ws-prod", "sub-2/rg-x/ws-prod", "ws-research"]
    accepted_values = [*configured, "WS-RESEARCH", "Sub-1/RG-Prod/WS-Prod"]
    refused_values = ["ws-prod", "WS-PROD", "ws-research ", "", "sub-1/rg-dev/ws-research/", "ws-researcH2"]
    for value in accepted_values + refused_values:
        body = json.dumps({"workspaces": [value]}).encode()
        accepted = _accepts(lambda b: inputs.parse_shutdown_body(b, SETTINGS), body.decode())
        assert accepted == (value in accepted_values), value
        assert bool(pattern.fullmatch(value)) == accepted, value
    container = document["components"]["schemas"]["ScoringBody"]["properties"]["container"]
    assert container["enum"] == ["uploads"]
    download = _parameter(document, "/api/dashboard", "download")["schema"]["pattern"]
    assert download.startswith("^(?:scored|bad-rows)/")


@pytest.mark.parametrize(
    "value",
    [
        "scored/../uploads/x.csv",
        "scored/a/../../reports/shutdown/x.json",
        "scored\\..\\uploads\\x.csv",
        "scored/./x.csv",
        "reports/shutdown/x.json",
        "uploads/x.csv",
        "scored/",
        "scored",
        "scored/x\x00.csv",
    ],
)
def test_a_download_is_a_blob_of_the_two_containers_named_exactly(value: str) -> None:
    with pytest.raises(RequestFieldError) as refused:
        inputs.parse_download(value, ("scored", "bad-rows"))
    assert refused.value.field == "download"
    assert str(refused.value).startswith("download: expected '<container>/<blob name>' in scored or bad-rows")


def test_a_download_keeps_every_other_name_as_it_is() -> None:
    for name in ("a b.csv", "dir/x..y.csv", "..x.csv", "ü/ß.csv", "x'<y>.csv.error.json", ".hidden"):
        assert inputs.parse_download(f"scored/{name}", ("scored", "bad-rows")) == ("scored", name)


def test_months_are_yyyy_mm_in_ascii_digits_within_the_years() -> None:
    assert inputs.parse_month("2026-12") == "2026-12"
    assert inputs.parse_month(None, default=datetime(2026, 11, 29, 23, 30, tzinfo=UTC)) == "2026-11"
    for bad in ("２０２６-12", "2026-13", "0000-00", "2026-1", "", "2026-12\n", " 2026-12", "3000-01"):
        with pytest.raises(RequestFieldError) as refused:
            inputs.parse_month(bad)
        assert str(refused.value) == f"month: expected {contract.MONTH_EXPECTED}, got {json.dumps(bad)}"
    with pytest.raises(RequestFieldError, match=r"^month: missing; expected a month YYYY-MM"):
        inputs.parse_month(None)
