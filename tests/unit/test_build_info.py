"""build.json -> GET /api/health: what the health probe says about the running build."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from triggers.health import health, read_build_info, report_functions


def test_missing_build_file_reports_unknown(tmp_path: Path) -> None:
    assert read_build_info(tmp_path / "build.json") == {"commit": "unknown", "built_at": "unknown"}


def test_build_file_fields_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "build.json"
    path.write_text(json.dumps({"commit": "0123abcd", "built_at": "2026-11-29T14:00:00Z", "extra": 1}))
    assert read_build_info(path) == {"commit": "0123abcd", "built_at": "2026-11-29T14:00:00Z"}


def test_unusable_build_file_reports_unknown_and_says_so_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "build.json"
    for text in ("{not json", "[1, 2]", json.dumps({"commit": 7, "built_at": ""})):
        path.write_text(text)
        assert read_build_info(path) == {"commit": "unknown", "built_at": "unknown"}, text
    assert "build.json is unreadable (JSONDecodeError)" in caplog.text


def test_health_answers_ok_with_the_build_fields_and_the_indexed_functions() -> None:
    request = func.HttpRequest(method="GET", url="/api/health", body=b"")
    response = health(request)
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert body["status"] == "ok" and set(body) == {"status", "commit", "built_at", "functions"}


def _app_with(*names: str) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name in names:

        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("ok")

        app.function_name(name)(app.route(route=name)(handler))
    return app


def _health_functions() -> list[str]:
    response = health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    functions: list[str] = json.loads(response.get_body())["functions"]
    return functions


def test_health_names_the_functions_the_worker_indexed() -> None:
    app = _app_with("zeta", "alpha")
    report_functions(app)
    try:
        assert _health_functions() == []  # not indexed yet: nothing to claim
        app.get_functions()  # what the worker (or devhost) does when it loads the app
        assert _health_functions() == ["alpha", "zeta"]
        # Asking again does not index again: a second get_functions() on the same app raises in azure-functions.
        assert _health_functions() == ["alpha", "zeta"]
        with pytest.raises(ValueError, match="does not have a unique function name"):
            app.get_functions()
    finally:
        report_functions(function_app.app)
