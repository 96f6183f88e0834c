"""`GET /api/openapi.json` from the app on devhost, and every POST endpoint refusing a wrong body with a 400 that
names the field the published schema names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from shared.web.contract import path_of
from tests.devhost_runner import RunningHost, start_devhost

pytestmark = pytest.mark.integration

SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",  # 1 January never comes during a test
    "AML_WORKSPACES": "00000000-0000-4000-8000-000000000001/rg-a/ws-a",  # bodies are refused before any ARM call
}

# One deliberately wrong body per POST endpoint of the document (the test fails if an endpoint has none).
WRONG: dict[str, dict[str, Any]] = {
    "/api/shutdown": {"include": ["ci-*", 7]},
    "/api/schedules/preview": {"at": 1732867200},
    "/api/reconcile": {"dry_run": "yes"},
    "/api/scoring": {"container": "incoming", "name": "heights.csv", "force": "yes"},
    "/api/score": {"rows": [{"height": 150}, {"height": "tall"}]},
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = start_devhost(tmp_path_factory.mktemp("openapi-devhost"), SETTINGS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def document(host: RunningHost) -> dict[str, Any]:
    response = requests.get(f"{host.base_url}/api/openapi.json", timeout=30)  # anonymous: no key at all
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_the_served_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert "/api/openapi.json" in document["paths"] and "/api/dashboard" in document["paths"]


def _schema_field(document: dict[str, Any], path: str, body: dict[str, Any]) -> str:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    errors = list(Draft202012Validator({**schema, "components": document["components"]}).iter_errors(body))
    assert len(errors) == 1, [e.message for e in errors]
    return path_of(tuple(errors[0].absolute_path))


def test_each_post_endpoint_refuses_a_wrong_body_naming_the_field_its_schema_names(
    host: RunningHost, document: dict[str, Any]
) -> None:
    posts = {path for path, item in document["paths"].items() if "post" in item}
    # The heads-up's link takes a form, not JSON: its refusals are pages (tests/unit/test_notice_page.py).
    assert posts - {"/api/notices/{token}"} == set(WRONG)
    for path, body in WRONG.items():
        named = _schema_field(document, path, body)
        response = host.request("POST", path, json=body)
        assert response.status_code == 400, (path, response.text)
        answer = response.json()
        assert answer["field"] == named, (path, answer)
        assert named in answer["error"], (path, answer)
        # The answer is the ErrorBody the document publishes for this 400.
        error_schema = document["paths"][path]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
        assert not list(
            Draft202012Validator({**error_schema, "components": document["components"]}).iter_errors(answer)
        )


def test_a_function_key_route_answers_401_without_the_key(host: RunningHost, document: dict[str, Any]) -> None:
    assert "401" in document["paths"]["/api/shutdown"]["post"]["responses"]
    assert host.request("POST", "/api/shutdown", key=False, json={}).status_code == 401
