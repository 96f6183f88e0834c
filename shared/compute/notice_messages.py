"""The heads-up as each channel kind wants it: one message per owner, listing all their instances with one link each.

Pure functions of an OwnerMessage, each checked against its documented format in tests/unit/test_notice_messages.py:

- webhook: our generic JSON, `{"notices": [{workspace, instance, owner, stop_at, reason, links: {review}}]}`;
- teams: a Teams Workflows webhook message carrying an Adaptive Card 1.4 (Teams renders up to 1.5 on desktop, 1.4 on
  mobile; only elements of 1.0-1.2: TextBlock, FactSet, Container) within Teams' 28 KB message limit;
- slack: an incoming-webhook message of Block Kit blocks (at most 50 blocks, section text at most 3000 characters,
  header text at most 150; docs.slack.dev/reference/block-kit);
- email: the ACS Email `EmailMessage` (senderAddress, recipients.to, content.subject/plainText/html).

An owner with more instances than a format can carry gets the first ones and a line saying how many more there are.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"
TEAMS_MAX_BYTES = 28 * 1024  # Teams rejects larger messages (bots and webhooks alike)
TEAMS_BUDGET_BYTES = 24 * 1024  # what the card may use, leaving room for the envelope
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_CHARS = 3000
SLACK_HEADER_CHARS = 150


@dataclass(frozen=True)
class Notice:
    """One instance of an owner's heads-up."""

    workspace: str  # subscription/resource-group/workspace
    instance: str
    owner: str | None
    stop_at: datetime
    reason: str
    review_url: str

    @property
    def workspace_name(self) -> str:
        return self.workspace.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class OwnerMessage:
    """What one owner is told in one run: their instances, in (stop time, workspace, name) order."""

    owner: str | None
    notices: tuple[Notice, ...]

    @property
    def first_stop(self) -> datetime:
        return min(n.stop_at for n in self.notices)

    @property
    def addressee(self) -> str:
        return self.owner or "owners unknown (no owner tag, no creator in ARM)"


def _time(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _count(n: int) -> str:
    return f"{n} compute instance" + ("" if n == 1 else "s")


def _more(n: int) -> str:
    return f"... and {n} more compute instance" + ("" if n == 1 else "s")


def subject(message: OwnerMessage) -> str:
    return f"Heads-up: {_count(len(message.notices))} will be stopped at {_time(message.first_stop)}"


# --- generic webhook ---------------------------------------------------------------------------------------------


def webhook_body(message: OwnerMessage) -> dict[str, Any]:
    return {
        "notices": [
            {
                "workspace": n.workspace,
                "instance": n.instance,
                "owner": n.owner,
                "stop_at": _iso(n.stop_at),
                "reason": n.reason,
                "links": {"review": n.review_url},
            }
            for n in message.notices
        ]
    }


# --- Teams (Workflows webhook, Adaptive Card) --------------------------------------------------------------------


def _card_item(n: Notice) -> dict[str, Any]:
    return {
        "type": "Container",
        "separator": True,
        "items": [
            {"type": "TextBlock", "text": f"**{n.instance}** in {n.workspace_name}", "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Stops at", "value": _time(n.stop_at)},
                    {"title": "Workspace", "value": n.workspace},
                    {"title": "Why", "value": n.reason},
                ],
            },
            {"type": "TextBlock", "text": f"[Keep it running, or stop it now]({n.review_url})", "wrap": True},
        ],
    }


def _card(message: OwnerMessage, shown: Sequence[Notice]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": subject(message), "size": "Medium", "weight": "Bolder", "wrap": True},
        {
            "type": "TextBlock",
            "text": f"For {message.addressee}. Each link shows the planned stop and lets you keep the instance "
            "running longer or stop it now.",
            "wrap": True,
            "isSubtle": True,
        },
        *(_card_item(n) for n in shown),
    ]
    hidden = len(message.notices) - len(shown)
    if hidden:
        body.append(
            {
                "type": "TextBlock",
                "text": f"{_more(hidden)} (too many for one Teams message).",
                "wrap": True,
            }
        )
    return {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "fallbackText": subject(message),
        "body": body,
    }


def teams_body(message: OwnerMessage) -> dict[str, Any]:
    """The message a Teams Workflows webhook posts to its channel (an attachment holding the card)."""
    shown = list(message.notices)
    card = _card(message, shown)
    while len(json.dumps(card)) > TEAMS_BUDGET_BYTES and len(shown) > 1:
        shown = shown[: max(1, len(shown) * 3 // 4)]
        card = _card(message, shown)
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# --- Slack (incoming webhook, Block Kit) ---------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    # Slack's escaping of user text in mrkdwn: only these three (docs.slack.dev, "formatting text").
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_line(n: Notice) -> str:
    text = (
        f"*{_mrkdwn(n.instance)}* in `{_mrkdwn(n.workspace_name)}`, stops at {_time(n.stop_at)}\n"
        f"{_mrkdwn(n.reason)}\n<{n.review_url}|Keep it running, or stop it now>"
    )
    return text[:SLACK_SECTION_CHARS]


def slack_body(message: OwnerMessage) -> dict[str, Any]:
    header = subject(message)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:SLACK_HEADER_CHARS]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(f"For {message.addressee}.")}]},
    ]
    room = SLACK_MAX_BLOCKS - len(blocks) - 1  # one left for "and N more"
    shown = message.notices[:room] if len(message.notices) > room + 1 else message.notices
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": _slack_line(n)}} for n in shown]
    hidden = len(message.notices) - len(shown)
    if hidden:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{_more(hidden)}."}]})
    return {"text": header, "blocks": blocks}


# --- email (Azure Communication Services) --------------------------------------------------------------------------


def _email_html(message: OwnerMessage) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><b>{e(n.instance)}</b></td><td>{e(n.workspace)}</td><td>{e(_time(n.stop_at))}</td>"
        f'<td>{e(n.reason)}</td><td><a href="{e(n.review_url)}">Keep it running, or stop it now</a></td></tr>'
        for n in message.notices
    )
    return (
        f"<html><body><p>{e(subject(message))}.</p><p>For {e(message.addressee)}.</p>"
        "<table border=1 cellpadding=4 cellspacing=0><tr><th>Instance</th><th>Workspace</th><th>Stops at</th>"
        f"<th>Why</th><th>Your choice</th></tr>{rows}</table></body></html>"
    )


def _email_text(message: OwnerMessage) -> str:
    lines = [f"{subject(message)}.", f"For {message.addressee}.", ""]
    for n in message.notices:
        lines += [f"- {n.instance} in {n.workspace}, stops at {_time(n.stop_at)}: {n.reason}", f"  {n.review_url}"]
    return "\n".join(lines) + "\n"


def email_message(message: OwnerMessage, sender: str, recipients: Sequence[str]) -> dict[str, Any]:
    """ACS Email's EmailMessage (api-version 2025-09-01): what `EmailClient.begin_send` takes."""
    return {
        "senderAddress": sender,
        "recipients": {"to": [{"address": a} for a in recipients]},
        "content": {"subject": subject(message), "plainText": _email_text(message), "html": _email_html(message)},
        "userEngagementTrackingDisabled": True,  # no tracking pixels or rewritten links: the link is a credential
    }
