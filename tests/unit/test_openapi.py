"""The OpenAPI document: valid OpenAPI 3.1, exactly the app's HTTP routes, and schemas that are the validators."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import azure.functions as func
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

import function_app  # noqa: F401  (registers the app that triggers.openapi documents)
from shared.errors import InputError
from shared.settings import ShutdownSettings
from shared.web import contract as http_contract
from shared.web import openapi
from shared.web.inputs import parse_preview_body, parse_reconcile_body, parse_scoring_body, parse_shutdown_body
from tests.devhost_runner import APP_ROOT
from triggers import openapi as openapi_trigger


def _document() -> dict[str, Any]:
    response = openapi_trigger.openapi(func.HttpRequest("GET", "/api/openapi.json", body=b""))
    assert response.status_code == 200 and response.mimetype == "application/json"
    document: dict[str, Any] = json.loads(response.get_body())
    return document


ROUTES_OF_THE_APP = """
import json, function_app
prefix = json.load(open("host.json"))["extensions"]["http"]["routePrefix"]
routes = {}
for function in function_app.app.get_functions():
    for binding in function.get_bindings():
        spec = binding.get_dict_repr()
        if spec["type"] == "httpTrigger":
            methods = sorted(str(getattr(m, "value", m)).lower() for m in spec["methods"])
            auth = str(getattr(spec["authLevel"], "value", spec["authLevel"]))
            routes[f"/{prefix}/{spec['route']}"] = [methods, auth]
print(json.dumps(routes))
"""


def _app_routes() -> dict[str, tuple[set[str], str]]:
    """Path -> (methods, auth level), read independently: the app's own get_functions() (as the worker indexes it,
    once, in a fresh process) and host.json's routePrefix."""
    out = subprocess.run(
        [sys.executable, "-c", ROUTES_OF_THE_APP], cwd=APP_ROOT, capture_output=True, text=True, check=True
    )
    return {path: (set(methods), auth) for path, (methods, auth) in json.loads(out.stdout).items()}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = _document()
    validate(document)  # openapi-spec-validator: raises on the first violation
    assert document["openapi"].startswith("3.1")


def test_its_paths_and_methods_are_exactly_the_apps_http_routes() -> None:
    document = _document()
    routes = _app_routes()
    assert "/api/openapi.json" in routes and "/api/shutdown" in routes  # the metadata was read
    assert {path: set(item) for path, item in document["paths"].items()} == {p: m for p, (m, _) in routes.items()}


def test_every_http_function_is_documented_and_nothing_else() -> None:
    # A function serving two methods has one operation per method, `<function>_<method>`.
    ids = {op["operationId"] for item in _document()["paths"].values() for op in item.values()}
    functions = {re.sub(r"_(get|post)$", "", i) if i not in openapi.OPERATIONS else i for i in ids}
    assert functions == set(openapi.OPERATIONS)


def test_function_key_routes_name_the_key_and_answer_401_and_anonymous_ones_need_none() -> None:
    document = _document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["functionKey"] == {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    assert schemes["functionKeyQuery"] == {"type": "apiKey", "in": "query", "name": "code"}
    for path, (methods, auth) in _app_routes().items():
        for method in methods:
            operation = document["paths"][path][method]
            if auth == "anonymous":
                assert operation["security"] == [], path
            else:
                assert "security" not in operation and document["security"], path  # the document's default
                assert "401" in operation["responses"], path


def _validator(document: dict[str, Any], schema_name: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return Draft202012Validator(root)


def _schema_path(document: dict[str, Any], schema_name: str, body: Any) -> str:
    """The field the published schema names for a wrong body (in our path notation)."""
    errors = list(_validator(document, schema_name).iter_errors(body))
    assert len(errors) == 1, [e.message for e in errors]
    path = tuple(errors[0].absolute_path)
    if errors[0].validator in ("required", "additionalProperties"):  # named in the message: "'name' is a ..."
        path += (errors[0].message.split("'")[1],)
    return http_contract.path_of(path)


SETTINGS = ShutdownSettings.from_env(
    {"AML_WORKSPACES": "sub-1/rg/ws-a", "SHUTDOWN_SCHEDULE": "0 0 22 * * *", "DATA_STORAGE": "x"}
)

# One wrong body per POST body model, and the parser the trigger runs on it.
WRONG: list[tuple[str, Any, Any]] = [
    ("ShutdownBody", {"include": ["ci-*", 7]}, lambda b: parse_shutdown_body(b, SETTINGS)),
    ("ShutdownBody", {"dry_run": None}, lambda b: parse_shutdown_body(b, SETTINGS)),
    ("PreviewBody", {"at": 5}, parse_preview_body),
    ("ReconcileBody", {"dry_run": "yes"}, parse_reconcile_body),
    (
        "ScoringBody",
        {"container": "incoming", "name": "a.csv", "force": 1},
        lambda b: parse_scoring_body(b, "incoming"),
    ),
    ("ScoringBody", {"container": "incoming"}, lambda b: parse_scoring_body(b, "incoming")),
    ("ShutdownBody", {"dryrun": True}, lambda b: parse_shutdown_body(b, SETTINGS)),
]


@pytest.mark.parametrize(("schema", "body", "parse"), WRONG, ids=[f"{w[0]}-{json.dumps(w[1])}" for w in WRONG])
def test_a_body_the_schema_refuses_is_refused_by_the_parser_naming_the_same_field(schema, body, parse) -> None:
    document = _document()
    named = _schema_path(document, schema, body)
    with pytest.raises(InputError) as refused:
        parse(json.dumps(body).encode())
    assert refused.value.field == named  # type: ignore[attr-defined]
    assert named in str(refused.value)


def test_the_score_rows_schema_names_the_row_and_column_the_parser_names() -> None:
    from shared.web.realtime import parse_score_body

    body = {"rows": [{"height": 150}, {"height": "tall", "id": "b"}]}
    assert _schema_path(_document(), "ScoreBody", body) == "rows[1].height"
    with pytest.raises(InputError) as refused:
        parse_score_body(json.dumps(body).encode(), "application/json", ("height",), 10_000)
    assert refused.value.field == "rows[1].height"  # type: ignore[attr-defined]
    assert str(refused.value) == 'rows[1].height: expected a finite number, got "tall"'


def test_error_answers_match_the_published_error_body() -> None:
    document = _document()
    with pytest.raises(InputError) as refused:
        parse_reconcile_body(b'{"dry_run": 1}')
    answer = refused.value.to_dict()  # type: ignore[attr-defined]
    assert answer == {"error": "dry_run: expected true or false, got 1", "field": "dry_run"}
    assert not list(_validator(document, "ErrorBody").iter_errors(answer))
    assert list(_validator(document, "ErrorBody").iter_errors({"message": "x"}))


def test_pydantic_is_not_imported_when_the_app_is_indexed() -> None:
    code = "import sys, function_app; print('pydantic' in sys.modules, 'shared.web.contract' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
