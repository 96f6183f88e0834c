"""The scoring runs table links a failed run's error document (scoring-errors/<name>.error.json), escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.web.dashboard import Page, page_link, render_page, scoring_run_from_status


def _html(status: dict[str, object]) -> str:
    page = Page(
        reports=[],
        selected=None,
        month="2026-11",
        scoring=[scoring_run_from_status(status)],
        schedules=None,
        now=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    )
    return render_page(page, page_link({"code": "k"}))


def _failed(custom: dict[str, str]) -> dict[str, object]:
    return {
        "name": "scoring_orchestrator",
        "instanceId": "score-f",
        "runtimeStatus": "Failed",
        "input": {"request": {"container": "incoming", "name": "x'<y>.csv"}},
        "customStatus": custom,
        "output": "incoming/x'<y>.csv lacks column 'height'",
    }


def test_a_failed_run_links_its_error_document() -> None:
    html = _html(_failed({"stage": "failed", "error_document": "scoring-errors/x'<y>.csv.error.json"}))
    assert "<a href='?code=k&amp;download=scoring-errors%2Fx%27%3Cy%3E.csv.error.json'>error</a>" in html
    assert "x'<y>" not in html  # user data is escaped


def test_a_failed_run_without_a_document_links_none() -> None:
    # e.g. the file was replaced while it was scored: the newer version's run speaks for the name
    assert ">error</a>" not in _html(_failed({"stage": "failed"}))
