"""The link's page against Azurite: GET shows and changes nothing, POST acts once, every refusal is a clear page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.compute import links
from shared.compute import postponements as pp
from shared.compute.postponements import InstanceNotice
from shared.compute.run_ids import workspace_instance_id, workspace_key_hash
from shared.web import notice_page

KEY = "a-test-signing-key-" + "x" * 20
WS = "sub-1/rg-ml/ws-research"
STOP = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
NOW = STOP - timedelta(minutes=25)
EVIL = "ci-<b>bold</b>"


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {
        "DATA_STORAGE": azurite.connection_string,
        "REPORTS_CONTAINER": f"r{uuid.uuid4().hex[:12]}",
        "NOTICE_SIGNING_KEY": KEY,
        "POSTPONE_MAX_HOURS": "12",
    }


@pytest.fixture
def run(env: dict[str, str]) -> str:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    notices = {n: InstanceNotice(owner="alice@contoso.com", stop_at=pp.iso_time(STOP) or "") for n in ("ci-a", EVIL)}
    pp.record_planned(run_id, WS, notices, env)
    return run_id


def _token(run: str, name: str = "ci-a", expires: datetime = STOP + timedelta(hours=13)) -> str:
    return links.make_token(run, WS, name, expires, KEY.encode())


def _etag(run: str, env: dict[str, str]) -> str:
    return blobs.blob_info(env["REPORTS_CONTAINER"], pp.record_blob(run, workspace_key_hash(WS)), env).etag


def _post(run: str, env: dict[str, str], form: dict[str, str] | bytes, name: str = "ci-a", at: datetime = NOW):
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    return notice_page.answer("POST", _token(run, name), body, at, env)


def test_get_shows_the_instance_and_the_choices_and_changes_nothing(run, env) -> None:
    before = _etag(run, env)
    page = notice_page.answer("GET", _token(run), b"", NOW, env)
    assert page.status == 200 and page.wake is None
    for text in ("ci-a", WS, "alice@contoso.com", "2026-11-30 22:00 UTC (in 25 min)", "Stop it now"):
        assert text in page.html
    assert "Keep it until 23:00 UTC (+1 h)" in page.html and "name=action value=postpone" in page.html
    assert "+16 h" not in page.html  # beyond POSTPONE_MAX_HOURS
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    for _ in range(3):
        notice_page.answer("GET", _token(run), b"", NOW, env)
    assert _etag(run, env) == before


def test_names_are_escaped(run, env) -> None:
    page = notice_page.answer("GET", _token(run, EVIL), b"", NOW, env)
    assert "<b>bold</b>" not in page.html and "ci-&lt;b&gt;bold&lt;/b&gt;" in page.html


def test_post_postpones_wakes_the_workspace_and_a_second_identical_post_changes_nothing(run, env) -> None:
    page = _post(run, env, {"action": "postpone", "minutes": "60"})
    assert page.status == 200 and "keeps running until 2026-11-30 23:00 UTC" in page.html
    assert page.wake == workspace_instance_id(run, WS)
    again = _post(run, env, {"action": "postpone", "minutes": "60"}, at=NOW + timedelta(seconds=20))
    assert again.status == 200 and again.wake is None and "nothing changed" in again.html
    shown = notice_page.answer("GET", _token(run), b"", NOW + timedelta(minutes=1), env)
    assert "Kept running until" in shown.html and "2026-11-30 23:00 UTC" in shown.html


def test_stop_now_confirms(run, env) -> None:
    page = _post(run, env, {"action": "stop-now"})
    assert page.status == 200 and "will be stopped within a minute" in page.html and page.wake


@pytest.mark.parametrize(
    ("form", "status", "text"),
    [
        ({"action": "postpone", "minutes": "0"}, 400, "minutes=0 is outside 1 to 720"),
        ({"action": "postpone", "minutes": "99999"}, 400, "minutes=99999 is outside 1 to 720"),
        ({"action": "postpone", "minutes": "soon"}, 400, "not a whole number"),
        ({"action": "nap"}, 400, "not a choice here"),
        (b"action=postpone&minutes=5&minutes=6", 400, "repeats minutes"),
        (b"action=stop-now&" + b"x" * 5000, 400, "the form is 5016 bytes"),
        (b"\xff\xfe", 400, "not URL-encoded"),
    ],
    ids=["zero", "too-many", "not-a-number", "unknown-action", "repeated", "huge", "binary"],
)
def test_bad_choices_get_a_400_page_and_change_nothing(run, env, form, status, text) -> None:
    before = _etag(run, env)
    page = _post(run, env, form)
    assert page.status == status and text in page.html and page.wake is None
    assert "That choice cannot be made" in page.html
    assert _etag(run, env) == before


def test_forged_expired_and_spent_links_are_refused_and_change_nothing(run, env) -> None:
    before = _etag(run, env)
    forged = links.make_token(run, WS, "ci-a", STOP + timedelta(hours=13), b"not the app's key, 32 chars long.")
    for method in ("GET", "POST"):
        page = notice_page.answer(method, forged, b"action=stop-now", NOW, env)
        assert page.status == 403 and "not one the app sent" in page.html
    expired = links.make_token(run, WS, "ci-a", NOW - timedelta(minutes=1), KEY.encode())
    assert notice_page.answer("POST", expired, b"action=stop-now", NOW, env).status == 410
    assert _etag(run, env) == before
    pp.take_due(run, WS, {"ci-a": STOP}, STOP, env)  # the step stops it: the link is spent
    spent = _etag(run, env)
    for method in ("GET", "POST"):
        page = notice_page.answer(method, _token(run), b"action=postpone&minutes=60", STOP, env)
        assert page.status == 410 and "spent" in page.html
    assert _etag(run, env) == spent


def test_too_many_clicks_get_429_with_retry_after(run, env) -> None:
    for i in range(pp.POSTS_PER_WINDOW):
        assert _post(run, env, {"action": "postpone", "minutes": str(30 + i)}).status == 200
    page = _post(run, env, {"action": "stop-now"}, at=NOW + timedelta(seconds=5))
    assert page.status == 429 and int(page.headers["Retry-After"]) > 0


def test_a_missing_signing_key_is_the_apps_fault_not_the_visitors(run, env) -> None:
    from shared.errors import SettingsError

    with pytest.raises(SettingsError):
        notice_page.answer("GET", _token(run), b"", NOW, {**env, "NOTICE_SIGNING_KEY": ""})
