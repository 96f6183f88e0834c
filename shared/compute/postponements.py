"""The notice record of one (run, workspace): what each owner was told, and what they chose through their link.

`reports/notices/{run_id}/{ws12}.json` (the reports container), one blob per workspace of a run, so a run of 10,000
instances never funnels every click through one blob or one orchestration. Written by the notice sender, changed by
the link's POST, read and changed by the run's workspace step; every write is conditional on the ETag read (a lost
race re-reads and re-decides), so a postponement is never lost and never applied twice:

- `postpone` keeps the instance running until its planned stop + N minutes (1 .. POSTPONE_MAX_HOURS x 60): the same
  choice twice is the same time, so a repeated POST changes nothing; `stop-now` makes it due at once;
- `take_due` (the step) marks the instances it is about to stop `spent` in the same conditional write that decides
  them: a POST that won the race is seen, and a link whose instance is being stopped answers 410, never a
  confirmation that is not kept;
- posts are rate-limited per instance (POSTS_PER_WINDOW in POST_WINDOW), counted in the record itself, so the limit
  holds across worker processes and hosts.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.compute.run_ids import workspace_instance_id, workspace_key_hash
from shared.errors import AppError, OutputChangedError
from shared.payloads import Payload
from shared.settings import REPORTS_CONTAINER

log = logging.getLogger(__name__)

POSTS_PER_WINDOW = 5
POST_WINDOW = timedelta(minutes=10)
POSTS_KEPT = 10
WRITE_ATTEMPTS = 25  # conditional writes lost to other writers before giving up
WRITE_BACKOFF_SECONDS = 0.02  # x attempt, jittered: concurrent losers do not collide again in lockstep
VERSION = 1

Action = Literal["postpone", "stop-now"]


def record_blob(run_id: str, workspace_hash: str) -> str:
    """The record's name in the reports container (`workspace_hash`: run_ids.workspace_key_hash)."""
    return f"notices/{run_id}/{workspace_hash}.json"


def iso_time(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class InstanceNotice(Payload):
    """One instance's line of the record (times as ISO 8601 text, UTC)."""

    owner: str | None
    stop_at: str
    channels: tuple[str, ...] = ()
    sent_at: str | None = None
    error: str | None = None
    postponed_until: str | None = None
    postponed_by: str | None = None
    stop_now: bool = False
    spent: bool = False
    posts: tuple[str, ...] = ()

    def due_at(self) -> datetime:
        """When the instance may be stopped: now after stop-now, else its postponement, else the planned stop."""
        planned = parse_time(self.stop_at)
        assert planned is not None
        if self.stop_now:
            return datetime.min.replace(tzinfo=UTC)
        return parse_time(self.postponed_until) or planned

    def report_entry(self) -> dict[str, Any]:
        """The report's `notice`: {sent_at, channels, postponed_until, postponed_by, error}."""
        return {
            "sent_at": self.sent_at,
            "channels": list(self.channels),
            "postponed_until": self.postponed_until,
            "postponed_by": self.postponed_by,
            "error": self.error,
        }


@dataclass(frozen=True)
class NoticeRecord(Payload):
    """The whole blob."""

    run: str
    workspace: str
    orchestration: str
    instances: Mapping[str, InstanceNotice] = field(default_factory=dict)
    version: int = VERSION

    @classmethod
    def empty(cls, run_id: str, workspace: str) -> NoticeRecord:
        return cls(run=run_id, workspace=workspace, orchestration=workspace_instance_id(run_id, workspace))


class RecordError(AppError):
    """The notice record cannot be read or written (storage refused, or too many concurrent writers)."""


# --- storage -------------------------------------------------------------------------------------------------


def read_record(
    run_id: str, workspace_hash: str, env: Mapping[str, str] | None = None
) -> tuple[NoticeRecord, str] | None:
    """The record and its ETag, or None when no notice was recorded for that run and workspace."""
    from shared import blobs

    found = blobs.read_blob_etag(REPORTS_CONTAINER.get(env), record_blob(run_id, workspace_hash), env)
    if found is None:
        return None
    data, etag = found
    try:
        return NoticeRecord.from_dict(json.loads(data)), etag
    except (ValueError, TypeError, AttributeError) as err:
        raise RecordError(f"notice record {record_blob(run_id, workspace_hash)} is unreadable: {err}") from err


def update_record(
    run_id: str,
    workspace: str,
    change: Callable[[NoticeRecord], NoticeRecord | None],
    env: Mapping[str, str] | None = None,
    *,
    create: bool = True,
) -> NoticeRecord | None:
    """Read the record (or start an empty one), apply `change`, write it back only if nobody wrote it meanwhile.

    `change` returns the new record, or None to write nothing; on a lost race it is applied again to a fresh read,
    so it must decide from the record alone. Returns what was written (or the unchanged record when nothing was).
    Without `create`, a record that does not exist (its run finished and dropped it) stays so: None.
    """
    from shared import blobs

    container = REPORTS_CONTAINER.get(env)
    ws12 = workspace_key_hash(workspace)
    name = record_blob(run_id, ws12)
    for attempt in range(WRITE_ATTEMPTS):
        found = read_record(run_id, ws12, env)
        if found is None and not create:
            return None
        record, etag = found if found is not None else (NoticeRecord.empty(run_id, workspace), None)
        changed = change(record)
        if changed is None:
            return record
        body = json.dumps(changed.to_dict(), separators=(",", ":")).encode("utf-8")
        try:
            blobs.upload_if(container, name, body, content_type="application/json", if_match=etag, env=env)
        except OutputChangedError:
            # Another writer (a click, the step, the sender) won: decide again on what it wrote.
            time.sleep(random.uniform(0, WRITE_BACKOFF_SECONDS * (attempt + 1)))
            continue
        return changed
    raise RecordError(f"notice record {name} kept changing under {WRITE_ATTEMPTS} attempts to write it")


# --- the sender's writes -----------------------------------------------------------------------------------------


def record_planned(
    run_id: str, workspace: str, planned: Mapping[str, InstanceNotice], env: Mapping[str, str] | None = None
) -> NoticeRecord | None:
    """Add the instances a heads-up is about to announce (before it is sent: a click may come at once).

    Idempotent: an instance already recorded keeps what happened to it (a repeated sender changes nothing).
    """

    from shared import blobs

    def change(record: NoticeRecord) -> NoticeRecord | None:
        new = {name: notice for name, notice in planned.items() if name not in record.instances}
        return replace(record, instances={**record.instances, **new}) if new else None

    blobs.ensure_container(REPORTS_CONTAINER.get(env), env)  # the first write of a run may precede its report
    return update_record(run_id, workspace, change, env)


def record_sent(
    run_id: str,
    workspace: str,
    delivered: Mapping[str, tuple[tuple[str, ...], str | None, str | None]],
    env: Mapping[str, str] | None = None,
) -> NoticeRecord | None:
    """After sending: per instance (channels that took it now, when, the errors of those that did not), merged with
    what an earlier send recorded (channels add up, the first sent_at stays); the owners' choices are left alone."""

    def change(record: NoticeRecord) -> NoticeRecord | None:
        instances = dict(record.instances)
        for name, (channels, sent_at, error) in delivered.items():
            if name in instances:
                old = instances[name]
                instances[name] = replace(
                    old,
                    channels=tuple(sorted({*old.channels, *channels})),
                    sent_at=old.sent_at or sent_at,
                    error=error,
                )
        return replace(record, instances=instances)

    # A run whose stops were all made before its heads-up was delivered may have dropped the record: leave it so.
    return update_record(run_id, workspace, change, env, create=False)


# --- the link's POST -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionResult:
    """What a POST did. `status`: 200 done (or already so: `changed` False), 400 a choice outside the rules,
    410 nothing left to change, 429 too many posts; `message` says it in plain words."""

    status: int
    message: str
    changed: bool = False
    notice: InstanceNotice | None = None
    retry_after: int | None = None
    record: NoticeRecord | None = None


def parse_choice(form: Mapping[str, str], max_hours: float) -> tuple[Action, int]:
    """The form's `action` (postpone | stop-now) and `minutes` (1 .. max_hours x 60); ValueError in plain words."""
    action = form.get("action", "").strip()
    if action == "stop-now":
        return "stop-now", 0
    if action != "postpone":
        raise ValueError(f"action={action[:40]!r} is not a choice here: expected postpone or stop-now")
    limit = math.floor(max_hours * 60)
    raw = form.get("minutes", "").strip()
    if not raw.isdigit() or len(raw) > 6:
        raise ValueError(f"minutes={raw[:20]!r} is not a whole number of minutes: expected 1 to {limit}")
    minutes = int(raw)
    if not 1 <= minutes <= limit:
        raise ValueError(f"minutes={minutes} is outside 1 to {limit} (POSTPONE_MAX_HOURS: {max_hours:g} h)")
    return "postpone", minutes


def _rate_limited(notice: InstanceNotice, now: datetime) -> int | None:
    """Seconds until another post is accepted, or None when one is."""
    recent = sorted(t for t in (parse_time(p) for p in notice.posts) if t is not None and now - t < POST_WINDOW)
    if len(recent) < POSTS_PER_WINDOW:
        return None
    return max(1, math.ceil((recent[-POSTS_PER_WINDOW] + POST_WINDOW - now).total_seconds()))


def _chosen(notice: InstanceNotice, action: Action, minutes: int, now: datetime, who: str) -> InstanceNotice:
    posts = (*notice.posts, iso_time(now) or "")[-POSTS_KEPT:]
    if action == "stop-now":
        return replace(notice, stop_now=True, postponed_until=None, postponed_by=who, posts=posts)
    planned = parse_time(notice.stop_at)
    assert planned is not None
    until = iso_time(planned + timedelta(minutes=minutes))
    return replace(notice, stop_now=False, postponed_until=until, postponed_by=who, posts=posts)


def apply_choice(
    run_id: str,
    workspace_hash: str,
    instance: str,
    action: Action,
    minutes: int,
    now: datetime,
    env: Mapping[str, str] | None = None,
) -> ActionResult:
    """A genuine link's POST: postpone or stop now, durably, at most once (see the module's docstring)."""
    found = read_record(run_id, workspace_hash, env)
    if found is None or instance not in found[0].instances:
        return ActionResult(410, "this run has no heads-up for this instance any more: there is nothing to change")
    outcome: dict[str, ActionResult] = {}

    def change(record: NoticeRecord) -> NoticeRecord | None:
        notice = record.instances.get(instance)
        if notice is None or notice.spent:
            outcome["r"] = ActionResult(410, "this instance is being stopped or was stopped: this link is spent")
            return None
        wait = _rate_limited(notice, now)
        if wait is not None:
            outcome["r"] = ActionResult(
                429, f"too many choices for this instance: try again in {wait} s", retry_after=wait
            )
            return None
        planned = parse_time(notice.stop_at)
        assert planned is not None
        if action == "postpone" and planned + timedelta(minutes=minutes) <= now:
            outcome["r"] = ActionResult(
                400,
                f"the stop was planned for {iso_time(planned)}; {minutes} minutes after it has passed already: "
                "choose a later time",
            )
            return None
        new = _chosen(notice, action, minutes, now, notice.owner or "the link's holder")
        same = (new.stop_now, new.postponed_until) == (notice.stop_now, notice.postponed_until)
        outcome["r"] = ActionResult(200, "unchanged" if same else "changed", changed=not same, notice=new)
        return replace(record, instances={**record.instances, instance: new})

    written = update_record(run_id, found[0].workspace, change, env)
    return replace(outcome["r"], record=written)


# --- the run's step --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDecision:
    """What a workspace step may do now: `due` instances to stop (already marked spent), the others' due times,
    and every recorded instance's notice (for the ledger and the report)."""

    due: tuple[str, ...]
    waiting: Mapping[str, datetime]
    notices: Mapping[str, InstanceNotice]

    @property
    def next_due(self) -> datetime | None:
        return min(self.waiting.values(), default=None)


def decide_due(
    record: NoticeRecord, planned: Mapping[str, datetime], now: datetime, *, announced: bool = False
) -> tuple[DueDecision, NoticeRecord | None]:
    """take_due's decision on one version of the record: what is due, and the record with the due ones spent (None
    when nothing changed). Pure."""
    due: list[str] = []
    waiting: dict[str, datetime] = {}
    instances = dict(record.instances)
    for name, stop_at in planned.items():
        notice = instances.get(name)
        when = stop_at if notice is None else notice.due_at()
        if when <= now:
            due.append(name)
            if notice is not None and not notice.spent:
                instances[name] = replace(notice, spent=True)
            elif notice is None and announced:
                instances[name] = InstanceNotice(owner=None, stop_at=iso_time(stop_at) or "", spent=True)
        else:
            waiting[name] = when
    changed = instances != dict(record.instances)
    return DueDecision(tuple(due), waiting, instances), (replace(record, instances=instances) if changed else None)


def take_due(
    run_id: str,
    workspace: str,
    planned: Mapping[str, datetime],
    now: datetime,
    env: Mapping[str, str] | None = None,
    *,
    announced: bool = False,
) -> DueDecision:
    """Which of the planned stops (name -> planned stop time) are due at `now`, with the owners' choices applied;
    the due ones are marked spent in the same conditional write (a click that raced it is seen, not lost).

    Instances without a notice (none was sent, or the record does not exist) are due at their planned time: a
    heads-up that failed never blocks a stop. `announced`: the run's heads-up may still be on its way (its sender
    has not written the record yet): a due instance gets a spent line of its own, so the sender, if it comes after
    the stop, does not announce a stop that was made.
    """
    result: dict[str, DueDecision] = {}

    def change(record: NoticeRecord) -> NoticeRecord | None:
        result["r"], changed = decide_due(record, planned, now, announced=announced)
        return changed

    if not planned:
        return DueDecision((), {}, {})
    ws12 = workspace_key_hash(workspace)
    due_now = any(t <= now for t in planned.values())
    if read_record(run_id, ws12, env) is None and not (announced and due_now):
        # No heads-up in this workspace (or nothing due yet): the plan's times hold, nothing to mark.
        due = tuple(n for n, t in planned.items() if t <= now)
        return DueDecision(due, {n: t for n, t in planned.items() if t > now}, {})
    update_record(run_id, workspace, change, env)
    return result["r"]


def carry_over(
    dead_run: str, run_id: str, workspace: str, names: Iterable[str], env: Mapping[str, str] | None = None
) -> dict[str, InstanceNotice]:
    """Take the owners' choices of a run that died (its claims were taken over by `run_id`) into this run's record:
    each of `names` the dead run announced and did not stop keeps its planned stop, postponement and stop-now (not
    its delivery: this run announces it again, with links of its own). The dead run's record is deleted (its links
    answer 410). Returns the choices this run's record holds for `names` (again on a repeated call)."""
    from shared import blobs

    wanted = set(names)
    found = read_record(dead_run, workspace_key_hash(workspace), env)
    taken = {
        name: InstanceNotice(
            owner=n.owner,
            stop_at=n.stop_at,
            postponed_until=n.postponed_until,
            postponed_by=n.postponed_by,
            stop_now=n.stop_now,
            posts=n.posts,
        )
        for name, n in (found[0].instances.items() if found is not None else ())
        if name in wanted and not n.spent and (n.postponed_until or n.stop_now)
    }

    def change(record: NoticeRecord) -> NoticeRecord | None:
        new = {name: n for name, n in taken.items() if name not in record.instances}
        return replace(record, instances={**record.instances, **new}) if new else None

    record = update_record(run_id, workspace, change, env) if taken else None
    if found is not None:
        blobs.delete_blob(REPORTS_CONTAINER.get(env), record_blob(dead_run, workspace_key_hash(workspace)), env)
    if record is None:
        own = read_record(run_id, workspace_key_hash(workspace), env)
        record = own[0] if own is not None else None
    held = record.instances if record is not None else {}
    return {name: n for name, n in held.items() if name in wanted and (n.postponed_until or n.stop_now)}


def mark_spent(run_id: str, workspace: str, names: Iterable[str], env: Mapping[str, str] | None = None) -> None:
    """Spend the links of `names` (the run stopped them, or ends without stopping them): they answer 410 from now."""
    wanted = set(names)

    def change(record: NoticeRecord) -> NoticeRecord | None:
        instances = {
            name: replace(n, spent=True) if name in wanted and not n.spent else n
            for name, n in record.instances.items()
        }
        return replace(record, instances=instances) if instances != dict(record.instances) else None

    if wanted and read_record(run_id, workspace_key_hash(workspace), env) is not None:
        update_record(run_id, workspace, change, env)


def report_entries(run_id: str, workspace: str, env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Each noticed instance's report `notice` (instances without a heads-up are absent: their `notice` is null)."""
    found = read_record(run_id, workspace_key_hash(workspace), env)
    return {} if found is None else {name: n.report_entry() for name, n in found[0].instances.items()}


def delete_record(run_id: str, workspace: str, env: Mapping[str, str] | None = None) -> None:
    """Drop a finished run's record of one workspace (after its `notice` entries went into the report): its links
    then answer 410 like spent ones, and `pending_stops` never reads it again."""
    from shared import blobs

    blobs.delete_blob(REPORTS_CONTAINER.get(env), record_blob(run_id, workspace_key_hash(workspace)), env)


@dataclass(frozen=True)
class PendingStop(Payload):
    """A heads-up whose stop has not happened yet, as the dashboard shows it (countdown, who postponed what)."""

    run: str
    workspace: str
    instance: str
    owner: str | None
    due_at: str  # the planned stop, the postponement, or now after stop-now
    planned_stop: str
    postponed_until: str | None
    postponed_by: str | None
    stop_now: bool


def pending_stops(now: datetime, env: Mapping[str, str] | None = None) -> list[PendingStop]:
    """Every announced stop not yet made, across the runs in progress (their records), soonest first."""
    from shared import blobs

    container = REPORTS_CONTAINER.get(env)
    out: list[PendingStop] = []
    for data in blobs.read_blobs(container, blobs.list_names(container, "notices/", env), env).values():
        if data is None:
            continue
        try:
            record = NoticeRecord.from_dict(json.loads(data))
        except (ValueError, TypeError, AttributeError):
            continue
        for name, n in record.instances.items():
            if n.spent:
                continue
            due = now if n.stop_now else n.due_at()
            out.append(
                PendingStop(
                    run=record.run,
                    workspace=record.workspace,
                    instance=name,
                    owner=n.owner,
                    due_at=iso_time(due) or "",
                    planned_stop=n.stop_at,
                    postponed_until=n.postponed_until,
                    postponed_by=n.postponed_by,
                    stop_now=n.stop_now,
                )
            )
    return sorted(out, key=lambda p: (p.due_at, p.workspace, p.instance))
