"""Each channel's body checked against its documented format, with the source named:

- Teams: the Adaptive Card schema, microsoft/AdaptiveCards `schemas/1.5.0/adaptive-card.json` (draft-06; the
  definitions AdaptiveCard, Container, TextBlock, FactSet, Fact used here are restated below with their properties,
  enums, required fields and `additionalProperties: false`; the cards also passed the whole official file, checked
  once by hand: it is not vendored here), in the message envelope of Microsoft's "Create incoming webhooks
  with Workflows for Microsoft Teams" (an attachment of contentType application/vnd.microsoft.card.adaptive), under
  Teams' 28 KB message size limit;
- Slack: Block Kit's limits (docs.slack.dev/reference/block-kit: at most 50 blocks per message; section text at most
  3000 characters; header plain_text at most 150; context at most 10 elements);
- email: ACS Email's EmailMessage (Azure/azure-rest-api-specs, specification/communication/data-plane/Email/stable/
  2025-09-01/CommunicationServicesEmail.json: senderAddress, content.subject, recipients.to[].address required).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from shared.compute.notice_messages import (
    TEAMS_MAX_BYTES,
    Notice,
    OwnerMessage,
    email_message,
    slack_body,
    teams_body,
    webhook_body,
)

STOP = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
URL = (
    "https://func-x.azurewebsites.net/api/notices/v1.eyJyIjoicnVuLTEifQ.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dQ"
)


def _enum(*values: str) -> dict[str, Any]:
    """An enum as the official schema writes one: the values, or any capitalisation of them (its pattern)."""
    words = "|".join("".join(f"[{c.lower()}|{c.upper()}]" for c in v) for v in values)
    return {"anyOf": [{"enum": list(values)}, {"pattern": f"^({words})$"}]}


_ELEMENT_COMMON = {
    "fallback": {},
    "height": _enum("auto", "stretch"),
    "separator": {"type": "boolean"},
    "spacing": _enum("default", "none", "small", "medium", "large", "extraLarge", "padding"),
    "id": {"type": "string"},
    "isVisible": {"type": "boolean"},
    "requires": {"type": "object"},
}
ADAPTIVE_CARD_SUBSET = {
    "$schema": "http://json-schema.org/draft-06/schema#",
    "$ref": "#/definitions/AdaptiveCard",
    "definitions": {
        "AdaptiveCard": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "version"],
            "properties": {
                "type": {"enum": ["AdaptiveCard"]},
                "version": {"type": "string", "pattern": r"^1\.[0-5]$"},
                "body": {"type": "array", "items": {"$ref": "#/definitions/Element"}},
                "actions": {"type": "array"},
                "fallbackText": {"type": "string"},
                "speak": {"type": "string"},
                "lang": {"type": "string"},
                "$schema": {"type": "string", "format": "uri"},
            },
        },
        "Element": {
            "oneOf": [
                {"$ref": "#/definitions/TextBlock"},
                {"$ref": "#/definitions/Container"},
                {"$ref": "#/definitions/FactSet"},
            ]
        },
        "TextBlock": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "text"],
            "properties": {
                "type": {"enum": ["TextBlock"]},
                "text": {"type": "string", "minLength": 1},
                "color": _enum("default", "dark", "light", "accent", "good", "warning", "attention"),
                "fontType": _enum("default", "monospace"),
                "size": _enum("default", "small", "medium", "large", "extraLarge"),
                "weight": _enum("default", "lighter", "bolder"),
                "style": _enum("default", "heading"),
                "isSubtle": {"type": "boolean"},
                "maxLines": {"type": "number"},
                "wrap": {"type": "boolean"},
                "horizontalAlignment": _enum("left", "center", "right"),
                **_ELEMENT_COMMON,
            },
        },
        "Container": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "items"],
            "properties": {
                "type": {"enum": ["Container"]},
                "items": {"type": "array", "items": {"$ref": "#/definitions/Element"}},
                "style": _enum("default", "emphasis", "good", "attention", "warning", "accent"),
                **_ELEMENT_COMMON,
            },
        },
        "FactSet": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "facts"],
            "properties": {
                "type": {"enum": ["FactSet"]},
                "facts": {"type": "array", "items": {"$ref": "#/definitions/Fact"}},
                **_ELEMENT_COMMON,
            },
        },
        "Fact": {
            "type": "object",
            "additionalProperties": False,
            "required": ["title", "value"],
            "properties": {"type": {"enum": ["Fact"]}, "title": {"type": "string"}, "value": {"type": "string"}},
        },
    },
}
TEAMS_ENVELOPE = {
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": "null"},
                    "content": {"type": "object"},
                },
            },
        },
    },
}
EMAIL_MESSAGE = {  # CommunicationServicesEmail.json, EmailMessage and the definitions it uses
    "type": "object",
    "required": ["senderAddress", "content", "recipients"],
    "additionalProperties": False,
    "properties": {
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "senderAddress": {"type": "string"},
        "content": {
            "type": "object",
            "required": ["subject"],
            "additionalProperties": False,
            "properties": {"subject": {"type": "string"}, "plainText": {"type": "string"}, "html": {"type": "string"}},
        },
        "recipients": {
            "type": "object",
            "required": ["to"],
            "additionalProperties": False,
            "properties": {
                kind: {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["address"],
                        "additionalProperties": False,
                        "properties": {"address": {"type": "string"}, "displayName": {"type": "string"}},
                    },
                }
                for kind in ("to", "cc", "bcc")
            },
        },
        "attachments": {"type": "array"},
        "replyTo": {"type": "array"},
        "userEngagementTrackingDisabled": {"type": "boolean"},
    },
}


def _notice(i: int, name: str | None = None, owner: str | None = "alice@contoso.com") -> Notice:
    return Notice(
        workspace=f"sub-1/rg-ml/ws-{i % 3}",
        instance=name or f"ci-{i:04d}",
        owner=owner,
        stop_at=STOP + timedelta(minutes=i % 2),
        reason="stop (Running, opt-out mode)",
        review_url=f"{URL}{i:04d}",
    )


def _message(n: int, **kwargs: Any) -> OwnerMessage:
    return OwnerMessage(kwargs.pop("owner", "alice@contoso.com"), tuple(_notice(i, **kwargs) for i in range(n)))


def test_the_generic_webhook_body_is_exactly_the_documented_one() -> None:
    body = webhook_body(_message(2))
    assert body == {
        "notices": [
            {
                "workspace": "sub-1/rg-ml/ws-0",
                "instance": "ci-0000",
                "owner": "alice@contoso.com",
                "stop_at": "2026-11-30T22:00:00Z",
                "reason": "stop (Running, opt-out mode)",
                "links": {"review": URL + "0000"},
            },
            {
                "workspace": "sub-1/rg-ml/ws-1",
                "instance": "ci-0001",
                "owner": "alice@contoso.com",
                "stop_at": "2026-11-30T22:01:00Z",
                "reason": "stop (Running, opt-out mode)",
                "links": {"review": URL + "0001"},
            },
        ]
    }


@pytest.mark.parametrize("count", [1, 7, 400])
def test_teams_is_an_adaptive_card_in_the_workflows_envelope_within_28_kb(count: int) -> None:
    body = teams_body(_message(count))
    jsonschema.validate(body, TEAMS_ENVELOPE)
    card = body["attachments"][0]["content"]
    jsonschema.Draft6Validator(ADAPTIVE_CARD_SUBSET).validate(card)
    assert len(json.dumps(body).encode()) <= TEAMS_MAX_BYTES
    text = json.dumps(card)
    assert URL + "0000" in text  # every shown instance carries its own link
    shown = text.count("[Keep it running, or stop it now](")
    assert shown == count or (shown < count and f"and {count - shown} more compute instances" in text)


def test_a_card_with_an_unknown_property_is_refused_by_the_schema() -> None:
    """The subset is strict where the official schema is (additionalProperties false): the check can fail."""
    card = teams_body(_message(1))["attachments"][0]["content"]
    card["body"][0]["colour"] = "good"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft6Validator(ADAPTIVE_CARD_SUBSET).validate(card)


def _check_block_kit(body: dict[str, Any]) -> None:
    assert isinstance(body.get("text"), str) and body["text"]  # the notification's fallback text
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and 1 <= len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert block["text"]["type"] in ("mrkdwn", "plain_text") and 1 <= len(block["text"]["text"]) <= 3000
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(e["type"] in ("mrkdwn", "plain_text", "image") for e in block["elements"])
        else:
            raise AssertionError(f"unexpected block {block['type']}")


@pytest.mark.parametrize("count", [1, 48, 49, 300])
def test_slack_stays_within_block_kit_limits(count: int) -> None:
    body = slack_body(_message(count))
    _check_block_kit(body)
    sections = [b for b in body["blocks"] if b["type"] == "section"]
    assert all(f"<{URL}" in s["text"]["text"] for s in sections)
    if len(sections) < count:
        assert f"and {count - len(sections)} more compute instances" in json.dumps(body)


def test_slack_escapes_names_that_would_be_markup() -> None:
    body = slack_body(_message(1, name="ci-<!channel>&co"))
    line = body["blocks"][2]["text"]["text"]
    assert "&lt;!channel&gt;&amp;co" in line and "<!channel>" not in line


def test_a_very_long_reason_is_cut_to_the_section_limit() -> None:
    long = Notice("s/r/w", "ci", None, STOP, "x" * 5000, URL)
    _check_block_kit(slack_body(OwnerMessage(None, (long,))))


def test_email_is_an_acs_email_message() -> None:
    body = email_message(_message(3, name=None), "DoNotReply@contoso.com", ["alice@contoso.com"])
    jsonschema.validate(body, EMAIL_MESSAGE)
    assert body["recipients"]["to"] == [{"address": "alice@contoso.com"}]
    assert body["content"]["subject"] == "Heads-up: 3 compute instances will be stopped at 2026-11-30 22:00 UTC"
    assert URL + "0002" in body["content"]["plainText"] and URL + "0002" in body["content"]["html"]


def test_email_html_escapes_names() -> None:
    body = email_message(_message(1, name="ci-<script>"), "a@b.cd", ["c@d.ef"])
    assert "<script>" not in body["content"]["html"] and "ci-&lt;script&gt;" in body["content"]["html"]


def test_an_unknown_owner_is_said_so() -> None:
    message = OwnerMessage(None, (_notice(0, owner=None),))
    assert "owners unknown" in email_message(message, "a@b.cd", ["c@d.ef"])["content"]["plainText"]
    assert webhook_body(message)["notices"][0]["owner"] is None
