"""The heads-up before a run's stops: who is told, whether the run waits at all, and sending it.

- `notice_plan` (the run's plan): how long the run's stops wait for their heads-up: NOTICE_MINUTES (or the HTTP
  body's notice_minutes), but 0 in a dry run, without channels, or when NOTIFY_CHANNELS / the link settings are
  malformed (then the error is reported and the stops happen as they would without a heads-up: none is skipped).
- `owner_of`: the OWNER_TAG tag, else ARM's `createdBy` user name, else None (the channels' default audience).
- `send_notices` (the run's notify phase): one message per owner per channel, listing all the owner's instances of
  the run with one signed link each. The notice record of each workspace is written before anything is sent (a click
  may come at once) and completed after; a repeated call sends only what was not delivered yet (the record says what
  was), so a retried activity does not announce twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.compute import channel_send, links, postponements
from shared.compute.channels import Channel, configured_channels
from shared.compute.notice_messages import Notice, OwnerMessage
from shared.compute.postponements import InstanceNotice, parse_time
from shared.errors import AppError
from shared.payloads import Payload
from shared.settings import OWNER_TAG, POSTPONE_MAX_HOURS

log = logging.getLogger(__name__)

LINK_GRACE = timedelta(hours=1)  # a link outlives the latest possible stop by this much (then it says "expired")


@dataclass(frozen=True)
class PlannedStop(Payload):
    """A stop the run will make, as the heads-up needs it (from the workspace's ledger item)."""

    workspace: str
    name: str
    stop_at: str  # ISO 8601: the run's start + notice minutes, or the schedule boundary
    reason: str
    tags: Mapping[str, str] = field(default_factory=dict)
    created_by: Mapping[str, str] | None = None


@dataclass(frozen=True)
class NoticePlan(Payload):
    """How long the run's stops wait for the heads-up (0: no heads-up), and why there is none when one was asked."""

    minutes: float
    error: str | None = None


@dataclass(frozen=True)
class NoticeSummary(Payload):
    """What the notify phase did, for the run's report: counts, and each failed delivery (channel and owner)."""

    owners: int = 0
    instances: int = 0
    messages_sent: int = 0
    messages_failed: int = 0
    skipped_already_sent: int = 0
    failures: tuple[dict[str, Any], ...] = ()
    error: str | None = None


def notice_plan(
    requested_minutes: float,
    dry_run: bool,
    env: Mapping[str, str] | None = None,
    *,
    setting_error: str | None = None,
    quiet: bool = False,
) -> NoticePlan:
    """The run's heads-up lead time. Settings are checked here, at plan time, so a mistake is reported once per run
    and never delays or skips a stop (`setting_error`: NOTICE_MINUTES itself could not be read; `quiet`: the caller
    logs the error if it reports it)."""
    if dry_run:
        return NoticePlan(0.0)
    if setting_error:
        return NoticePlan(0.0, setting_error)
    if requested_minutes <= 0:
        return NoticePlan(0.0)
    try:
        if not configured_channels(env):
            return NoticePlan(0.0)
        links.signing_key(env)
        links.link_base(env)
        POSTPONE_MAX_HOURS.get(env)
    except AppError as err:
        if not quiet:
            log.error("no heads-up in this run: %s", err)
        return NoticePlan(0.0, f"no heads-up was sent: {err}")
    return NoticePlan(requested_minutes)


def owner_of(tags: Mapping[str, str], created_by: Mapping[str, str] | None, owner_tag: str) -> str | None:
    """The owner tag (its name compared case-insensitively, as ARM's tag names are), else the creator's user name."""
    wanted = owner_tag.strip().lower()
    for key, value in tags.items():
        if key.strip().lower() == wanted and value.strip():
            return value.strip()
    name = (created_by or {}).get("user_name", "").strip()
    return name or None


def _messages(
    run_id: str, stops: Sequence[PlannedStop], owner_tag: str, key: bytes, base: str, max_hours: float
) -> list[OwnerMessage]:
    by_owner: dict[str | None, list[Notice]] = {}
    for stop in stops:
        at = parse_time(stop.stop_at)
        assert at is not None
        expires = at + timedelta(hours=max_hours) + LINK_GRACE
        token = links.make_token(run_id, stop.workspace, stop.name, expires, key)
        owner = owner_of(stop.tags, stop.created_by, owner_tag)
        notice = Notice(stop.workspace, stop.name, owner, at, stop.reason, links.link_url(base, token))
        by_owner.setdefault(owner, []).append(notice)
    return [
        OwnerMessage(owner, tuple(sorted(notices, key=lambda n: (n.stop_at, n.workspace, n.instance))))
        for owner, notices in sorted(by_owner.items(), key=lambda item: (item[0] is None, item[0] or ""))
    ]


def _record_planned(run_id: str, messages: Iterable[OwnerMessage], env: Mapping[str, str] | None) -> dict[str, Any]:
    """Write each workspace's record before sending; returns what each record held already (a repeated call)."""
    by_workspace: dict[str, dict[str, InstanceNotice]] = {}
    for message in messages:
        for n in message.notices:
            by_workspace.setdefault(n.workspace, {})[n.instance] = InstanceNotice(
                owner=n.owner, stop_at=postponements.iso_time(n.stop_at) or ""
            )
    held: dict[str, Any] = {}
    for workspace, planned in by_workspace.items():
        record = postponements.record_planned(run_id, workspace, planned, env)
        held[workspace] = dict(record.instances) if record is not None else {}
    return held


def _not_spent(messages: Sequence[OwnerMessage], held: Mapping[str, Any]) -> list[OwnerMessage]:
    """The messages without the instances the run stopped (or is stopping) already: a heads-up that comes after its
    stop (a sender retried, or slower than a very short notice) announces nothing that was done."""
    out = []
    for message in messages:
        kept = tuple(
            n for n in message.notices if not getattr(held.get(n.workspace, {}).get(n.instance), "spent", False)
        )
        if kept:
            out.append(OwnerMessage(message.owner, kept))
    return out


def _jobs(
    run_id: str, messages: Sequence[OwnerMessage], channels: Sequence[Channel], held: Mapping[str, Any]
) -> tuple[list[tuple[Channel, OwnerMessage, str]], int]:
    """(channel, the owner's message restricted to what the channel wants, operation id) for each delivery still to
    make; and how many were skipped because an earlier call delivered them."""
    jobs, skipped = [], 0
    for message in messages:
        for channel in channels:
            wanted = tuple(n for n in message.notices if channel.wants(n.workspace, n.instance))
            if not wanted:
                continue
            done = [held.get(n.workspace, {}).get(n.instance) for n in wanted]
            if all(d is not None and channel.name in d.channels for d in done):
                skipped += 1
                continue
            operation = f"{run_id}|{channel.name}|{message.owner or ''}"
            jobs.append((channel, OwnerMessage(message.owner, wanted), operation))
    return jobs, skipped


def send_notices(
    run_id: str,
    stops: Sequence[PlannedStop],
    now: datetime,
    env: Mapping[str, str] | None = None,
    **delivery: Any,
) -> NoticeSummary:
    """Announce `stops` (see the module's docstring). Raises only when the notice records cannot be written (then
    nothing was sent); a channel's failure is in the summary."""
    if not stops:
        return NoticeSummary()
    try:
        channels = configured_channels(env)
        key, base = links.signing_key(env), links.link_base(env)
        max_hours = POSTPONE_MAX_HOURS.get(env)
        owner_tag = OWNER_TAG.get(env)
    except AppError as err:
        return NoticeSummary(instances=len(stops), error=f"no heads-up was sent: {err}")
    if not channels:
        return NoticeSummary(instances=len(stops))
    messages = _messages(run_id, stops, owner_tag, key, base, max_hours)
    held = _record_planned(run_id, messages, env)
    messages = _not_spent(messages, held)
    jobs, skipped = _jobs(run_id, messages, channels, held)
    results = channel_send.deliver_all(jobs, **delivery)
    _record_sent(run_id, jobs, results, now, env)
    failures = tuple(
        {"channel": r.channel, "owner": job[1].owner, "instances": len(job[1].notices), "error": r.error}
        for job, r in zip(jobs, results, strict=True)
        if not r.ok
    )
    log.info(
        "heads-up of run %s: %d owners, %d messages sent, %d failed",
        run_id,
        len(messages),
        len(jobs) - len(failures),
        len(failures),
    )
    return NoticeSummary(
        owners=len(messages),
        instances=len(stops),
        messages_sent=len(jobs) - len(failures),
        messages_failed=len(failures),
        skipped_already_sent=skipped,
        failures=failures,
    )


def _record_sent(
    run_id: str,
    jobs: Sequence[tuple[Channel, OwnerMessage, str]],
    results: Sequence[channel_send.Delivery],
    now: datetime,
    env: Mapping[str, str] | None,
) -> None:
    """Per instance: the channels that took it, when, and the errors of those that did not (merged with what an
    earlier call recorded)."""
    found: dict[str, dict[str, tuple[set[str], list[str]]]] = {}
    for (_, message, _), result in zip(jobs, results, strict=True):
        for n in message.notices:
            ok, errors = found.setdefault(n.workspace, {}).setdefault(n.instance, (set(), []))
            if result.ok:
                ok.add(result.channel)
            elif result.error:
                errors.append(result.error)
    for workspace, instances in found.items():
        delivered = {
            name: (tuple(sorted(ok)), postponements.iso_time(now) if ok else None, "; ".join(errors) or None)
            for name, (ok, errors) in instances.items()
        }
        postponements.record_sent(run_id, workspace, delivered, env)
