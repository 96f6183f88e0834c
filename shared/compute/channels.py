"""NOTIFY_CHANNELS: where heads-ups go, checked once so a mistake is named before anything is announced.

A JSON list of channels, each `{name, kind, url | to, instances?}`:

- `webhook` (`url`): our generic JSON, `{"notices": [{workspace, instance, owner, stop_at, reason, links}]}`;
- `teams` (`url`): a Teams Workflows webhook ("post to a channel when a webhook request is received"), an Adaptive Card;
- `slack` (`url`): a Slack incoming webhook, Block Kit blocks;
- `email` (`to`, `endpoint`, `sender`): Azure Communication Services Email with the app's managed identity; an owner
  whose name is an email address gets the mail, everyone else's instances go to `to` (the default audience).

`instances` (optional): globs of the instances the channel is for, matched against the instance name and against
`workspace-name/instance` (`ws-prod/*`). URLs, addresses and endpoints may be Key Vault references. Webhook URLs are
credentials: no message of this module (or the log) ever contains one, nor an address.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.errors import SettingsError
from shared.settings import NOTIFY_CHANNELS, is_reference, resolve_reference

Kind = Literal["webhook", "teams", "slack", "email"]
KINDS: tuple[Kind, ...] = ("webhook", "teams", "slack", "email")
_FIELDS: dict[str, frozenset[str]] = {
    "webhook": frozenset({"name", "kind", "url", "instances"}),
    "teams": frozenset({"name", "kind", "url", "instances"}),
    "slack": frozenset({"name", "kind", "url", "instances"}),
    "email": frozenset({"name", "kind", "to", "endpoint", "sender", "instances"}),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_CHANNELS = 20
MAX_RECIPIENTS = 50  # ACS Email: at most 50 recipients (to + cc + bcc) per message


@dataclass(frozen=True)
class Channel:
    """One configured channel; `url`/`to`/`endpoint`/`sender` are resolved (Key Vault) and checked."""

    name: str
    kind: Kind
    url: str = field(default="", repr=False)
    to: tuple[str, ...] = field(default=(), repr=False)
    endpoint: str = field(default="", repr=False)
    sender: str = field(default="", repr=False)
    instances: tuple[str, ...] = ()

    def wants(self, workspace: str, instance: str) -> bool:
        """Whether this channel announces `instance` of `workspace` (its key `sub/rg/name`)."""
        if not self.instances:
            return True
        qualified = f"{workspace.rsplit('/', 1)[-1]}/{instance}".lower()
        return any(
            fnmatch.fnmatchcase(instance.lower(), p.lower()) or fnmatch.fnmatchcase(qualified, p.lower())
            for p in self.instances
        )


def is_email(text: str | None) -> bool:
    return bool(text) and _EMAIL_RE.match(text or "") is not None


def _fail(where: str, problem: str) -> SettingsError:
    return SettingsError(f"setting NOTIFY_CHANNELS{where} {problem}")


def _text(item: Mapping[str, Any], key: str, where: str, env: Mapping[str, str] | None, secret: bool = True) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where}.{key}", "is missing: expected a non-empty string")
    # A Key Vault reference names a vault and a secret, never the value: resolved here, checked below.
    return (
        resolve_reference(f"NOTIFY_CHANNELS{where}.{key}", value.strip(), env) if is_reference(value) else value.strip()
    )


def _url(raw: str, where: str, https_only: bool = False) -> str:
    parts = urlsplit(raw)
    loopback = (parts.hostname or "") in LOOPBACK_HOSTS
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in raw):
        raise _fail(where, "is not a URL (value not shown): expected https://...")
    if parts.scheme == "http" and (https_only or not loopback):
        raise _fail(where, "is a plain http URL (value not shown): expected https:// (http only to this machine)")
    return raw


def _addresses(raw: Any, where: str, env: Mapping[str, str] | None) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise _fail(where, "is missing: expected an email address or a list of them")
    out = []
    for i, text in enumerate(items):
        value = resolve_reference(f"NOTIFY_CHANNELS{where}[{i}]", text.strip(), env)
        # A reference may hold several addresses (one secret for a whole list).
        for address in (a.strip() for a in re.split(r"[,;\s]+", value) if a.strip()):
            if not is_email(address):
                raise _fail(f"{where}[{i}]", "is not an email address (value not shown)")
            out.append(address)
    if len(out) > MAX_RECIPIENTS:
        raise _fail(where, f"has {len(out)} addresses: Azure Communication Services takes at most {MAX_RECIPIENTS}")
    return tuple(dict.fromkeys(out))


def _globs(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p.strip() for p in raw):
        raise _fail(where, 'must be a non-empty list of name patterns such as ["ci-*", "ws-prod/*"]')
    return tuple(p.strip() for p in raw)


def _channel(item: Any, i: int, env: Mapping[str, str] | None) -> Channel:
    where = f"[{i}]"
    if not isinstance(item, dict):
        raise _fail(where, "must be an object {name, kind, url | to, instances?}")
    kind = item.get("kind")
    if kind not in KINDS:
        raise _fail(f"{where}.kind", f"is {kind!r}: expected one of {', '.join(KINDS)}")
    unknown = sorted(set(item) - _FIELDS[kind])
    if unknown:
        raise _fail(
            where,
            f"has unknown field(s) {', '.join(unknown)} for kind {kind}: expected {', '.join(sorted(_FIELDS[kind]))}",
        )
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(f"{where}.name", f"is {name!r}: expected 1-64 letters, digits, '-', '_' or '.'")
    instances = _globs(item.get("instances"), f"{where}.instances")
    if kind == "email":
        sender = _text(item, "sender", where, env)
        if not is_email(sender):
            raise _fail(
                f"{where}.sender",
                "is not an email address (value not shown): expected the ACS sender, "
                "e.g. DoNotReply@<your verified domain>",
            )
        return Channel(
            name,
            kind,
            to=_addresses(item.get("to"), f"{where}.to", env),
            endpoint=_url(_text(item, "endpoint", where, env), f"{where}.endpoint", https_only=True),
            sender=sender,
            instances=instances,
        )
    return Channel(name, kind, url=_url(_text(item, "url", where, env), f"{where}.url"), instances=instances)


def parse_channels(raw: str, env: Mapping[str, str] | None = None) -> tuple[Channel, ...]:
    """The channels of a NOTIFY_CHANNELS value (empty text: none); SettingsError naming the entry and field."""
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as err:
        # The position only: the text around it may be a webhook URL.
        raise _fail("", f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if not isinstance(items, list):
        raise _fail("", "must be a JSON list of channels [{name, kind, url | to, instances?}]")
    if len(items) > MAX_CHANNELS:
        raise _fail("", f"has {len(items)} channels: at most {MAX_CHANNELS}")
    channels = tuple(_channel(item, i, env) for i, item in enumerate(items))
    names = [c.name for c in channels]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _fail("", f"names channel(s) {', '.join(repeated)} twice: each name once (reports name channels)")
    return channels


def configured_channels(env: Mapping[str, str] | None = None) -> tuple[Channel, ...]:
    """NOTIFY_CHANNELS as configured (the whole value may itself be a Key Vault reference)."""
    return parse_channels(NOTIFY_CHANNELS.get(env), env)
