"""The heads-up's signed links: a token binds one instance of one run's workspace; anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.compute import links
from shared.compute.run_ids import workspace_key_hash
from shared.errors import SettingsError

KEY = b"k" * 40
WS = "sub-1/rg-ml/ws-research"
NOW = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
LATER = NOW + timedelta(hours=13)


def test_a_token_round_trips_to_its_claims() -> None:
    token = links.make_token("run-1", WS, "ci-alice", LATER, KEY)
    claims = links.verify(token, KEY, NOW)
    assert claims == links.LinkClaims("run-1", workspace_key_hash(WS), "ci-alice", LATER)
    assert len(token) < 200 and "/" not in token and "+" not in token  # a path segment, no escaping needed


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _flip(t, 10),  # claims altered
        lambda t: _flip(t, len(t) - 5),  # signature altered
        lambda t: links.make_token("run-1", WS, "ci-bob", LATER, KEY).rsplit(".", 1)[0] + "." + t.rsplit(".", 1)[1],
        lambda t: links.make_token("run-1", WS, "ci-alice", LATER, b"another key of 32 characters or more"),
        lambda t: t[:-1],
        lambda t: "v2" + t[2:],
        lambda t: "",
        lambda t: "x" * 5000,
        lambda t: t + ".extra",
    ],
    ids=["claims", "signature", "other-claims", "other-key", "truncated", "version", "empty", "huge", "extra-part"],
)
def test_anything_but_the_signed_token_is_a_forgery(tamper) -> None:
    token = links.make_token("run-1", WS, "ci-alice", LATER, KEY)
    with pytest.raises(links.ForgedLinkError) as err:
        links.verify(tamper(token), KEY, NOW)
    assert err.value.status == 403


def test_a_genuine_token_past_its_expiry_is_gone_not_forged() -> None:
    token = links.make_token("run-1", WS, "ci-alice", NOW - timedelta(seconds=1), KEY)
    with pytest.raises(links.ExpiredLinkError) as err:
        links.verify(token, KEY, NOW)
    assert err.value.status == 410


def test_names_of_any_alphabet_survive() -> None:
    token = links.make_token("run:2026-11-30T22:00", WS, "ci-zoë-研究", LATER, KEY)
    assert links.verify(token, KEY, NOW).instance == "ci-zoë-研究"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "NOTICE_SIGNING_KEY is required"),
        ({"NOTICE_SIGNING_KEY": "short-secret-value"}, "too short"),
    ],
)
def test_a_missing_or_weak_key_is_named_and_never_shown(env, message) -> None:
    with pytest.raises(SettingsError) as err:
        links.signing_key(env)
    assert message in str(err.value)
    assert "short-secret-value" not in str(err.value)


def test_links_point_at_the_base_url_else_at_the_apps_host_name() -> None:
    assert links.link_base({"NOTICE_LINK_BASE_URL": "https://ops.contoso.com/"}) == "https://ops.contoso.com"
    assert links.link_base({"WEBSITE_HOSTNAME": "func-x.azurewebsites.net"}) == "https://func-x.azurewebsites.net"
    assert links.link_url("https://h", "v1.a.b") == "https://h/api/notices/v1.a.b"
    with pytest.raises(SettingsError, match="WEBSITE_HOSTNAME"):
        links.link_base({})
    with pytest.raises(SettingsError, match=r"NOTICE_LINK_BASE_URL='ops\.contoso\.com'"):
        links.link_base({"NOTICE_LINK_BASE_URL": "ops.contoso.com"})
