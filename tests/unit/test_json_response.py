"""triggers/http.py: the one JSON answer of the HTTP functions and the one error answer, and no function building
its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

from triggers.http import json_response

TRIGGERS = Path(__file__).resolve().parents[2] / "triggers"


def test_a_body_is_serialized_and_declared_json() -> None:
    response = json_response({"error": "field 'name' is missing"}, 400)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body()) == {"error": "field 'name' is missing"}


def test_text_already_serialized_is_passed_as_is_with_its_headers() -> None:
    text = '{"response": [39.51915036822079]}'  # shared.web.realtime's own float formatting, not json.dumps'
    response = json_response(text, headers={"X-Model-Version": "height-weight@1"})
    assert response.status_code == 200
    assert response.get_body().decode() == text
    assert response.headers["X-Model-Version"] == "height-weight@1"


def test_indented_answers_for_people_at_a_terminal() -> None:
    assert json_response({"a": 1}, indent=1).get_body().decode() == '{\n "a": 1\n}'


def test_no_trigger_module_builds_its_own_json_response() -> None:
    # Three modules once had their own helper; a fourth copy would drift (a forgotten content type).
    others = [
        path.name
        for path in TRIGGERS.glob("*.py")
        if path.name != "http.py" and 'mimetype="application/json"' in path.read_text()
    ]
    assert others == []


def test_no_trigger_module_answers_an_error_status_itself() -> None:
    # Every 4xx/5xx goes through error_response (shared.web.answers): one status and one wording per kind of error.
    found = [
        f"{path.name}: {match.group(0)}"
        for path in TRIGGERS.glob("*.py")
        if path.name != "http.py"
        for match in re.finditer(r"(status_code=|json_response\([^\n]*, )[45][0-9][0-9]\b", path.read_text())
    ]
    assert found == []
