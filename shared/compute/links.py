"""The heads-up's signed links: one per instance, `{base}/api/notices/{token}`, with no function key in them.

A token is `v1.<claims>.<signature>`: the claims (run, workspace hash, instance, expiry) as compact JSON in base64url,
signed with HMAC-SHA256 under NOTICE_SIGNING_KEY. It is the link's only credential (links travel by mail and chat), so
it binds exactly one instance of one run's workspace: a signature that does not match is a forgery, whatever the
claims say. A link also expires (its `x`); once the instance is stopped the notice record marks it spent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.compute.run_ids import workspace_key_hash
from shared.errors import AppError, SettingsError
from shared.settings import NOTICE_LINK_BASE_URL, NOTICE_SIGNING_KEY, WEBSITE_HOSTNAME

VERSION = "v1"
MIN_KEY_LENGTH = 32
MAX_TOKEN_LENGTH = 1024  # a longer path segment is no token of ours: refused before any work
ROUTE = "api/notices"
_TOKEN_RE = re.compile(r"^v1\.[A-Za-z0-9_-]{8,900}\.[A-Za-z0-9_-]{43}$")


class LinkError(AppError):
    """A link that is not honoured; `status` is the HTTP answer it gets."""

    status = 403


class ForgedLinkError(LinkError):
    """Not a token this app signed (malformed, altered, or signed with another key)."""


class ExpiredLinkError(LinkError):
    """A genuine link past its expiry."""

    status = 410


@dataclass(frozen=True)
class LinkClaims:
    """What a genuine link says: which instance of which run's workspace, and until when it may be used."""

    run_id: str
    workspace_hash: str  # shared.compute.run_ids.workspace_key_hash of the workspace key
    instance: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"r": self.run_id, "w": self.workspace_hash, "i": self.instance, "x": int(self.expires_at.timestamp())}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())


def make_token(run_id: str, workspace: str, instance: str, expires_at: datetime, key: bytes) -> str:
    """The token of one instance's link (`workspace` is the key `sub/rg/name`)."""
    claims = LinkClaims(run_id, workspace_key_hash(workspace), instance, expires_at)
    body = _b64(json.dumps(claims.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_signature(key, signed)}"


def verify(token: str, key: bytes, now: datetime) -> LinkClaims:
    """The claims of a token this app signed with `key`; ForgedLinkError or ExpiredLinkError otherwise.

    The signature is checked (in constant time) before the claims are read: nothing of a forged token is trusted.
    """
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_RE.match(token):
        raise ForgedLinkError("this link is not one the app sent (malformed)")
    signed, _, signature = token.rpartition(".")
    if not hmac.compare_digest(_signature(key, signed), signature):
        raise ForgedLinkError("this link is not one the app sent (its signature does not match)")
    try:
        data = json.loads(_unb64(signed.split(".", 1)[1]))
        claims = LinkClaims(
            run_id=str(data["r"]),
            workspace_hash=str(data["w"]),
            instance=str(data["i"]),
            expires_at=datetime.fromtimestamp(int(data["x"]), UTC),
        )
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError) as err:
        # Signed by us yet unreadable: only a bug (or a leaked key) makes one; refuse it like a forgery.
        raise ForgedLinkError("this link is not one the app sent (unreadable claims)") from err
    if now >= claims.expires_at:
        raise ExpiredLinkError(f"this link expired at {claims.expires_at.isoformat()}")
    return claims


def signing_key(env: Mapping[str, str] | None = None) -> bytes:
    """NOTICE_SIGNING_KEY as bytes; SettingsError (never quoting it) when it is unset or too short to be safe."""
    key = NOTICE_SIGNING_KEY.get(env).strip()
    if not key:
        raise SettingsError(
            "setting NOTICE_SIGNING_KEY is required to sign the heads-up's links (a Key Vault reference in Azure; "
            "devhost generates one locally)"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"setting NOTICE_SIGNING_KEY (value not shown) is too short: expected at least {MIN_KEY_LENGTH} "
            'characters of random text, e.g. from `python -c "import secrets; print(secrets.token_urlsafe(48))"`'
        )
    return key.encode("utf-8")


def link_base(env: Mapping[str, str] | None = None) -> str:
    """Where links point: NOTICE_LINK_BASE_URL, else https://{WEBSITE_HOSTNAME} (App Service sets it)."""
    base = NOTICE_LINK_BASE_URL.get(env).strip().rstrip("/")
    if base:
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", base):
            raise SettingsError(
                f"setting NOTICE_LINK_BASE_URL={base!r} is malformed: expected an origin such as https://ops.contoso.com"
            )
        return base
    host = WEBSITE_HOSTNAME.get(env).strip()
    if not host:
        raise SettingsError(
            "setting NOTICE_LINK_BASE_URL is required where WEBSITE_HOSTNAME is not set (App Service sets it): "
            "the heads-up's links need the app's address"
        )
    return f"https://{host}"


def link_url(base: str, token: str) -> str:
    return f"{base}/{ROUTE}/{token}"
