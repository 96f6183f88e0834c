"""`GET|POST /api/notices/{token}`: the page behind a heads-up's link, and what a click on it does.

GET shows the instance, its workspace, its owner, when it will be stopped and the choices, and changes nothing
(mail scanners and chat previews fetch links). POST (a form button: `action=postpone&minutes=N` or `action=stop-now`)
acts through shared.compute.postponements and answers with a confirmation page. Every refusal is a page too: 403 for
a link the app did not sign, 410 for one expired or spent, 400 for a choice outside the rules, 429 for too many
clicks; none of them changes anything. The token is the only credential, so the pages keep it out of referrers,
caches and indexes. Pure except for `answer`, which reads the settings and the record.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from shared.compute import links, postponements
from shared.compute.postponements import InstanceNotice, NoticeRecord, parse_time

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 2048  # the form has two short fields; anything larger is no click of ours
PRESET_MINUTES = (30, 60, 120, 240, 480)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is the credential: never in a Referer header
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
CSS = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}"
    "dt{font-weight:600}dd{margin:0 0 .6rem 0}form{display:inline-block;margin:.2rem .3rem .2rem 0}"
    "button{padding:.5rem .9rem;font-size:1rem;cursor:pointer}.stop{background:#b3261e;color:#fff;border:0}"
    ".note{background:#fff4ce;padding:.6rem}.ok{background:#dff6dd;padding:.6rem}.muted{color:#616161}"
    "input[type=number]{width:6rem;font-size:1rem;padding:.4rem}"
)


@dataclass(frozen=True)
class PageAnswer:
    """The HTTP answer, and the orchestration to wake with the `notice` event (None: nothing changed)."""

    status: int
    html: str
    headers: Mapping[str, str] = field(default_factory=lambda: dict(HEADERS))
    wake: str | None = None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "not set"
    minutes = round((value - now).total_seconds() / 60)
    relative = "now" if minutes == 0 else (f"in {minutes} min" if minutes > 0 else f"{-minutes} min ago")
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({relative})"


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "") if hours else f"{rest} min"


def _page(
    title: str, body: str, status: int = 200, wake: str | None = None, retry_after: int | None = None
) -> PageAnswer:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<meta name=robots content='noindex,nofollow'><title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )
    headers = dict(HEADERS)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return PageAnswer(status, document, headers, wake)


def refusal(status: int, message: str, retry_after: int | None = None) -> PageAnswer:
    titles = {400: "That choice cannot be made", 403: "This link is not valid", 410: "This link is no longer active"}
    titles[429] = "Too many clicks"
    return _page(
        titles.get(status, "Not possible"), f"<p class=note>{_e(message)}</p>", status, retry_after=retry_after
    )


def _facts(record: NoticeRecord, name: str, notice: InstanceNotice, now: datetime) -> str:
    planned = parse_time(notice.stop_at)
    rows = [
        ("Compute instance", name),
        ("Workspace", record.workspace),
        ("Owner", notice.owner or "unknown (the instance has no owner tag and ARM names no creator)"),
        ("Planned stop", _when(planned, now)),
    ]
    if notice.stop_now:
        rows.append(("Your choice", "stop now"))
    elif notice.postponed_until:
        rows.append(("Kept running until", _when(parse_time(notice.postponed_until), now)))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _choices(notice: InstanceNotice, max_hours: float, now: datetime) -> str:
    planned = parse_time(notice.stop_at)
    assert planned is not None
    limit = int(max_hours * 60)
    forms = []
    for minutes in (m for m in PRESET_MINUTES if m <= limit):
        until = planned.timestamp() + minutes * 60
        if until <= now.timestamp():
            continue
        when = datetime.fromtimestamp(until, UTC)
        shown = f"{when:%H:%M}" if when.date() == planned.astimezone(UTC).date() else f"{when:%a %H:%M}"
        label = f"Keep it until {shown} UTC (+{_duration(minutes)})"
        forms.append(
            "<form method=post><input type=hidden name=action value=postpone>"
            f"<input type=hidden name=minutes value={minutes}><button type=submit>{_e(label)}</button></form>"
        )
    forms.append(
        "<form method=post><input type=hidden name=action value=postpone>"
        f"<label>Keep it <input type=number name=minutes min=1 max={limit} step=1 required> minutes after the "
        "planned stop</label> <button type=submit>Keep</button></form>"
    )
    forms.append(
        "<form method=post><input type=hidden name=action value=stop-now>"
        "<button type=submit class=stop>Stop it now</button></form>"
    )
    return (
        f"<p>Choose one (at most {_e(_duration(limit))} after the planned stop). Nothing changes until you press a "
        "button.</p>" + "".join(forms)
    )


def review_page(record: NoticeRecord, name: str, notice: InstanceNotice, max_hours: float, now: datetime) -> PageAnswer:
    body = (
        f"<p>The app will stop this compute instance at its planned time unless you choose otherwise.</p>"
        f"{_facts(record, name, notice, now)}{_choices(notice, max_hours, now)}"
    )
    return _page(f"Planned stop of {name}", body)


def confirmation_page(
    record: NoticeRecord, name: str, notice: InstanceNotice, changed: bool, now: datetime, wake: str | None
) -> PageAnswer:
    if notice.stop_now:
        what = f"{name} will be stopped within a minute or two."
    else:
        what = f"{name} keeps running until {_when(parse_time(notice.postponed_until), now)}; then it is stopped."
    if not changed:
        what += " (This was already your choice: nothing changed.)"
    return _page("Done", f"<p class=ok>{_e(what)}</p>{_facts(record, name, notice, now)}", 200, wake)


# --- the request -------------------------------------------------------------------------------------------------


def parse_form(body: bytes) -> dict[str, str]:
    """The POSTed form (application/x-www-form-urlencoded); ValueError in plain words."""
    if len(body) > MAX_FORM_BYTES:
        raise ValueError(f"the form is {len(body)} bytes; a choice takes fewer than {MAX_FORM_BYTES}")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body.strip()))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the form is not URL-encoded text") from None
    repeated = sorted(k for k, v in fields.items() if len(v) > 1)
    if repeated:
        raise ValueError(f"the form repeats {', '.join(repeated)}: send each field once")
    return {k: v[0] for k, v in fields.items()}


GONE = (
    "the run that announced this stop is no longer running (its host was restarted?): it will not stop this "
    "instance, and there is nothing to change"
)


def run_of(token: str, now: datetime, env: Mapping[str, str] | None = None) -> str | None:
    """The run a genuine, unexpired link belongs to (None for any other link: `answer` says why). Settings errors
    raise."""
    try:
        return links.verify(token, links.signing_key(env), now).run_id
    except links.LinkError:
        return None


def answer(
    method: str,
    token: str,
    body: bytes,
    now: datetime,
    env: Mapping[str, str] | None = None,
    *,
    run_gone: bool = False,
) -> PageAnswer:
    """The page for a GET or POST of one link. Settings errors and storage failures raise (the trigger answers 503);
    everything a visitor can cause is a page. `run_gone`: the link's run no longer runs (the trigger asked the
    Durable client), so nothing would act on a choice: 410, and nothing is written."""
    from shared.settings import POSTPONE_MAX_HOURS

    try:
        claims = links.verify(token, links.signing_key(env), now)
    except links.LinkError as err:
        return refusal(err.status, str(err))
    if run_gone:
        return refusal(410, GONE)
    max_hours = POSTPONE_MAX_HOURS.get(env)
    if method == "POST":
        try:
            action, minutes = postponements.parse_choice(parse_form(body), max_hours)
        except ValueError as err:
            return refusal(400, str(err))
        result = postponements.apply_choice(
            claims.run_id, claims.workspace_hash, claims.instance, action, minutes, now, env
        )
        if result.status != 200 or result.notice is None or result.record is None:
            return refusal(result.status, result.message, result.retry_after)
        record = result.record
        log.info(
            "notice link: %s %s in %s by %s", action, claims.instance, record.workspace, result.notice.postponed_by
        )
        # The event only wakes the workspace's orchestration, which re-reads the record: it carries nothing.
        wake = record.orchestration if result.changed else None
        return confirmation_page(record, claims.instance, result.notice, result.changed, now, wake)
    found = postponements.read_record(claims.run_id, claims.workspace_hash, env)
    notice = found[0].instances.get(claims.instance) if found is not None else None
    if found is None or notice is None:
        return refusal(410, "this run has no heads-up for this instance any more: there is nothing to change")
    if notice.spent:
        return refusal(410, "this instance is being stopped or was stopped: this link is spent")
    return review_page(found[0], claims.instance, notice, max_hours, now)
