"""build.json -> GET /api/health: what the health probe says about the running build."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

from triggers.health import health, read_build_info


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


def test_health_answers_ok_with_the_build_fields() -> None:
    request = func.HttpRequest(method="GET", url="/api/health", body=b"")
    response = health(request)
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert body["status"] == "ok" and set(body) == {"status", "commit", "built_at"}
