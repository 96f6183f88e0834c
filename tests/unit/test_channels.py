"""NOTIFY_CHANNELS: good values become channels; every mistake is named by entry and field, never quoting a URL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.compute.channels import parse_channels
from shared.errors import SettingsError

SECRET_URL = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"
GOOD: list[dict[str, Any]] = [
    {"name": "ops", "kind": "webhook", "url": "https://ops.contoso.com/hooks/stop"},
    {"name": "team-chat", "kind": "teams", "url": "https://prod-12.westeurope.logic.azure.com/workflows/x"},
    {"name": "slack", "kind": "slack", "url": SECRET_URL, "instances": ["ci-*", "ws-prod/*"]},
    {
        "name": "mail",
        "kind": "email",
        "to": ["ml-team@contoso.com", "lead@contoso.com"],
        "endpoint": "https://acs-ml.europe.communication.azure.com",
        "sender": "DoNotReply@contoso.com",
    },
    {"name": "local", "kind": "webhook", "url": "http://127.0.0.1:8080/hook"},
]


def test_good_channels() -> None:
    channels = parse_channels(json.dumps(GOOD))
    assert [(c.name, c.kind) for c in channels] == [(g["name"], g["kind"]) for g in GOOD]
    mail = channels[3]
    assert mail.to == ("ml-team@contoso.com", "lead@contoso.com") and mail.sender == "DoNotReply@contoso.com"
    assert SECRET_URL not in repr(channels)  # a channel's repr (a log line, a traceback) shows no credential
    assert parse_channels("") == () and parse_channels("  ") == ()


def test_instances_match_the_name_or_workspace_slash_name() -> None:
    slack = parse_channels(json.dumps([GOOD[2]]))[0]
    assert slack.wants("s/rg/ws-dev", "ci-alice")
    assert slack.wants("s/rg/ws-prod", "gpu-big")
    assert not slack.wants("s/rg/ws-dev", "gpu-big")
    assert parse_channels(json.dumps([GOOD[0]]))[0].wants("s/rg/any", "anything")


def _bad(entry: dict[str, Any] | str, where: str = "[0]") -> str:
    raw = entry if isinstance(entry, str) else json.dumps([entry])
    with pytest.raises(SettingsError) as err:
        parse_channels(raw)
    message = str(err.value)
    assert message.startswith(f"setting NOTIFY_CHANNELS{where}"), message
    assert where in message, message
    assert "SECRETSECRET" not in message and "contoso.com/hooks" not in message
    return message


@pytest.mark.parametrize(
    ("entry", "where", "expected"),
    [
        ("[{", "", "is not valid JSON"),
        ('{"name": "x"}', "", "must be a JSON list"),
        (["not an object"], "[0]", "must be an object"),
        ({"name": "x", "kind": "pager", "url": SECRET_URL}, "[0].kind", "is 'pager': expected one of webhook, teams"),
        ({"name": "x", "url": SECRET_URL}, "[0].kind", "is None"),
        ({"name": "x y", "kind": "slack", "url": SECRET_URL}, "[0].name", "expected 1-64 letters"),
        ({"name": "x", "kind": "slack"}, "[0].url", "is missing"),
        ({"name": "x", "kind": "slack", "url": "hooks.slack.com/services/SECRETSECRET"}, "[0].url", "is not a URL"),
        ({"name": "x", "kind": "slack", "url": "http://hooks.slack.com/SECRETSECRET"}, "[0].url", "plain http URL"),
        ({"name": "x", "kind": "slack", "url": "ftp://x/SECRETSECRET"}, "[0].url", "is not a URL"),
        ({"name": "x", "kind": "slack", "url": SECRET_URL, "channel": "#ops"}, "[0]", "unknown field(s) channel"),
        ({"name": "x", "kind": "webhook", "url": SECRET_URL, "instances": "ci-*"}, "[0].instances", "list of name"),
        ({"name": "m", "kind": "email", "to": ["a@b.c"], "sender": "d@e.f"}, "[0].endpoint", "is missing"),
        (
            {"name": "m", "kind": "email", "to": ["a@b.c"], "sender": "d@e.f", "endpoint": "http://acs.x.com"},
            "[0].endpoint",
            "plain http URL",
        ),
        (
            {"name": "m", "kind": "email", "to": ["not-an-address"], "sender": "d@e.f", "endpoint": "https://a.b"},
            "[0].to[0]",
            "is not an email address",
        ),
        ({"name": "m", "kind": "email", "to": [], "sender": "d@e.f", "endpoint": "https://a.b"}, "[0].to", "missing"),
        (
            {"name": "m", "kind": "email", "to": ["a@b.c"], "sender": "nobody", "endpoint": "https://a.b"},
            "[0].sender",
            "",
        ),
        ({"name": "m", "kind": "email", "url": SECRET_URL}, "[0]", "unknown field(s) url for kind email"),
    ],
)
def test_mistakes_are_named_without_the_secret(entry, where, expected) -> None:
    assert expected in _bad(entry, where)


def test_repeated_names_and_too_many_recipients() -> None:
    assert "names channel(s) ops twice" in _bad(json.dumps([GOOD[0], GOOD[0]]), "")
    many = {**GOOD[3], "to": [f"p{i}@contoso.com" for i in range(51)]}
    assert "at most 50" in _bad(many, "[0].to")


def test_a_key_vault_reference_is_resolved_by_the_installed_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import settings

    seen: list[str] = []

    def resolver(where: str, reference: str, env: Any) -> str:
        seen.append(where)
        return SECRET_URL if "slack" in reference else "ml-team@contoso.com, lead@contoso.com"

    monkeypatch.setattr(settings, "_reference_resolver", resolver)
    raw = [
        {"name": "slack", "kind": "slack", "url": "@Microsoft.KeyVault(VaultName=kv;SecretName=slack-hook)"},
        {**GOOD[3], "to": ["@Microsoft.KeyVault(VaultName=kv;SecretName=ml-team)"]},
    ]
    slack, mail = parse_channels(json.dumps(raw))
    assert slack.url == SECRET_URL and mail.to == ("ml-team@contoso.com", "lead@contoso.com")
    assert seen == ["NOTIFY_CHANNELS[0].url", "NOTIFY_CHANNELS[1].to[0]"]


def test_a_reference_without_a_resolver_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import settings

    monkeypatch.setattr(settings, "_reference_resolver", None)
    entry = {"name": "s", "kind": "slack", "url": "@Microsoft.KeyVault(VaultName=kv;SecretName=slack-hook)"}
    assert "Key Vault reference, but no resolver" in _bad(entry, "[0].url")
