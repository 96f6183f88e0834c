"""Measured savings: for the instances the app stopped, when each was next seen running, and the hours in between.

The estimate of a report assumes an instance stays stopped until the app's next start or nightly run; a person who
starts it at 09:00 halves the truth. So each stop the app makes opens an interval (`record_stops`, called with the
report's price of the instance), and an observation closes it (`observe`): from a listing the app makes anyway, or,
when none was made for 15 minutes, from the observer's own (`observe_due`, one listing per workspace with open
intervals, none otherwise). The end of an interval is ARM's `lastOperation` when it is a Start (or Restart) after the
stop, else the time the instance was first seen running (or gone).

One blob per workspace, `reports/measured/{ws12}.json`: per instance the open interval (since, price) and the closed
hours and savings per month, months older than MONTHS_KEPT dropped, so it is bounded by the number of instances, not of
runs. Every write is conditional on the ETag read. `measured_month` sums a month for GET /api/savings and the page.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.compute.arm import ComputeInstance
from shared.compute.postponements import iso_time, parse_time
from shared.compute.run_ids import workspace_key_hash
from shared.errors import AppError, OutputChangedError
from shared.payloads import Payload
from shared.settings import AML_WORKSPACES, REPORTS_CONTAINER, Workspace

log = logging.getLogger(__name__)

OBSERVE_EVERY = timedelta(minutes=15)
MONTHS_KEPT = 13
WRITE_ATTEMPTS = 10
# States in which an instance costs again: it was started (by a person, a schedule, a job) after our stop.
RUNNING_STATES = frozenset({"Running", "JobRunning", "Starting", "Restarting", "SettingUp", "UserSettingUp"})
STARTS = frozenset({"start", "restart"})


def blob_name(workspace: str) -> str:
    return f"measured/{workspace_key_hash(workspace)}.json"


@dataclass(frozen=True)
class MonthTotal(Payload):
    hours: float = 0.0
    savings: float = 0.0
    currency: str | None = None


@dataclass(frozen=True)
class InstanceMeasure(Payload):
    """One instance: its open interval (if the app stopped it and it was not seen running since) and closed months."""

    open_since: str | None = None
    hourly_price: float | None = None
    currency: str | None = None
    months: Mapping[str, MonthTotal] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkspaceMeasures(Payload):
    workspace: str
    observed_at: str | None = None
    instances: Mapping[str, InstanceMeasure] = field(default_factory=dict)
    version: int = 1

    def open_count(self) -> int:
        return sum(1 for m in self.instances.values() if m.open_since)


@dataclass(frozen=True)
class StoppedInstance(Payload):
    """A stop the app made and saw confirmed, with the report's price of the instance."""

    name: str
    stopped_at: str
    hourly_price: float | None = None
    currency: str | None = None


# --- storage -----------------------------------------------------------------------------------------------------


def _read(workspace: str, env: Mapping[str, str] | None) -> tuple[WorkspaceMeasures, str | None]:
    from shared import blobs

    found = blobs.read_blob_etag(REPORTS_CONTAINER.get(env), blob_name(workspace), env)
    if found is None:
        return WorkspaceMeasures(workspace), None
    try:
        return WorkspaceMeasures.from_dict(json.loads(found[0])), found[1]
    except (ValueError, TypeError, AttributeError) as err:
        # Measurements are a report, not a control: a damaged blob starts afresh (logged), it never stops a run.
        log.error("measured savings of %s unreadable, starting afresh: %s", workspace, err)
        return WorkspaceMeasures(workspace), found[1]


def _update(
    workspace: str,
    change: Callable[[WorkspaceMeasures], WorkspaceMeasures | None],
    env: Mapping[str, str] | None,
) -> WorkspaceMeasures:
    from shared import blobs

    container = REPORTS_CONTAINER.get(env)
    for attempt in range(WRITE_ATTEMPTS):
        current, etag = _read(workspace, env)
        changed = change(current)
        if changed is None:
            return current
        data = json.dumps(changed.to_dict(), separators=(",", ":")).encode("utf-8")
        try:
            blobs.upload_if(
                container, blob_name(workspace), data, content_type="application/json", if_match=etag, env=env
            )
        except OutputChangedError:
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
            continue
        return changed
    raise AppError(f"measured savings of {workspace}: the blob kept changing under {WRITE_ATTEMPTS} writes")


# --- intervals ---------------------------------------------------------------------------------------------------


def _month_key(at: datetime) -> str:
    return f"{at:%Y-%m}"


def _next_month(at: datetime) -> datetime:
    first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def split_by_month(start: datetime, end: datetime) -> dict[str, float]:
    """Hours of [start, end) in each calendar month (UTC)."""
    out: dict[str, float] = {}
    cursor = start
    while cursor < end:
        boundary = min(end, _next_month(cursor))
        out[_month_key(cursor)] = out.get(_month_key(cursor), 0.0) + (boundary - cursor).total_seconds() / 3600
        cursor = boundary
    return out


def _closed(measure: InstanceMeasure, end: datetime) -> InstanceMeasure:
    since = parse_time(measure.open_since)
    assert since is not None
    months = dict(measure.months)
    for month, hours in split_by_month(since, max(since, end)).items():
        old = months.get(month, MonthTotal())
        savings = hours * measure.hourly_price if measure.hourly_price is not None else 0.0
        months[month] = MonthTotal(
            hours=round(old.hours + hours, 4),
            savings=round(old.savings + savings, 4),
            currency=old.currency or measure.currency,
        )
    kept = dict(sorted(months.items())[-MONTHS_KEPT:])
    return replace(measure, open_since=None, months=kept)


def restarted_at(instance: ComputeInstance, since: datetime, seen: datetime) -> datetime | None:
    """When a stopped instance ran again: its Start/Restart operation after `since` (ARM's lastOperation), else
    `seen` (first seen running); None while it is still stopped."""
    if instance.state not in RUNNING_STATES:
        return None
    last = instance.last_operation or {}
    if str(last.get("operation_name", "")).lower() in STARTS:
        try:
            at = parse_time(str(last.get("operation_time", "")))
        except ValueError:
            at = None
        if at is not None and since < at <= seen:
            return at
    return seen


# --- what the run and the observer call ----------------------------------------------------------------------------


def record_stops(workspace: str, stops: Iterable[StoppedInstance], env: Mapping[str, str] | None = None) -> None:
    """Open an interval per confirmed stop (an instance already open keeps its earlier start)."""
    wanted = list(stops)

    def change(current: WorkspaceMeasures) -> WorkspaceMeasures | None:
        instances = dict(current.instances)
        for stop in wanted:
            old = instances.get(stop.name, InstanceMeasure())
            if old.open_since:
                continue
            instances[stop.name] = replace(
                old, open_since=stop.stopped_at, hourly_price=stop.hourly_price, currency=stop.currency
            )
        if instances == dict(current.instances):
            return None
        return replace(
            current, instances=instances, observed_at=current.observed_at or min(s.stopped_at for s in wanted)
        )

    if wanted:
        from shared import blobs

        blobs.ensure_container(REPORTS_CONTAINER.get(env), env)
        _update(workspace, change, env)


def observe(
    workspace: str, listed: Iterable[ComputeInstance], at: datetime, env: Mapping[str, str] | None = None
) -> int:
    """Close the intervals of the instances `listed` shows running again (or no longer shows: deleted); returns how
    many. Writes only when something closed, or to note the observation when the last is OBSERVE_EVERY old."""
    by_name = {i.name: i for i in listed}
    closed = {"n": 0}

    def change(current: WorkspaceMeasures) -> WorkspaceMeasures | None:
        instances = dict(current.instances)
        closed["n"] = 0
        if not current.open_count():
            return None  # nothing of ours is stopped here: no write (the usual case of a listing)
        for name, measure in current.instances.items():
            since = parse_time(measure.open_since)
            if since is None:
                continue
            instance = by_name.get(name)
            end = at if instance is None else restarted_at(instance, since, at)
            if end is not None:
                instances[name] = _closed(measure, end)
                closed["n"] += 1
        last = parse_time(current.observed_at)
        stale = last is None or at - last >= OBSERVE_EVERY
        if not closed["n"] and not stale:
            return None
        return replace(current, instances=instances, observed_at=iso_time(at))

    _update(workspace, change, env)
    return closed["n"]


def due_for_observation(workspace: str, at: datetime, env: Mapping[str, str] | None = None) -> bool:
    """Whether the observer should list `workspace` now: it has open intervals and none was observed lately."""
    current, _ = _read(workspace, env)
    last = parse_time(current.observed_at)
    return current.open_count() > 0 and (last is None or at - last >= OBSERVE_EVERY)


def observe_due(
    at: datetime,
    env: Mapping[str, str] | None = None,
    lister: Callable[[Workspace, Mapping[str, str] | None], list[ComputeInstance]] | None = None,
) -> dict[str, Any]:
    """The observer (a 15-minute timer): one listing per configured workspace that has open intervals and no
    observation in OBSERVE_EVERY; none otherwise. Per workspace: closed intervals, or why it could not list."""
    from shared.compute.arm import list_instances

    list_workspace = lister or list_instances
    out: dict[str, Any] = {}
    for workspace in AML_WORKSPACES.get(env):
        if not due_for_observation(workspace.key, at, env):
            continue
        try:
            listed = list_workspace(workspace, env)
        except AppError as err:  # ARM down or the workspace gone: the next observation tries again
            out[workspace.key] = {"error": str(err)}
            continue
        out[workspace.key] = {"closed": observe(workspace.key, listed, at, env)}
    return out


@dataclass(frozen=True)
class MeasuredMonth(Payload):
    """A month's measured stopped hours and savings (never added across currencies), next to the estimate."""

    month: str
    stopped_hours: float
    savings_by_currency: Mapping[str, float]
    instances: int
    still_stopped: int
    workspaces: int
    unpriced_hours: float = 0.0


def measured_month(year: int, month: int, now: datetime, env: Mapping[str, str] | None = None) -> MeasuredMonth:
    """Stopped hours and savings measured in a calendar month (UTC): closed intervals, plus the open ones up to `now`
    (or the month's end). Reads one small blob per workspace."""
    from shared import blobs

    key = f"{year:04d}-{month:02d}"
    start = datetime(year, month, 1, tzinfo=UTC)
    end = min(_next_month(start), max(now, start))
    container = REPORTS_CONTAINER.get(env)
    names = blobs.list_names(container, "measured/", env)
    hours = unpriced = 0.0
    savings: dict[str, float] = {}
    counted = still = 0
    for data in blobs.read_blobs(container, names, env).values():
        if data is None:
            continue
        try:
            measures = WorkspaceMeasures.from_dict(json.loads(data))
        except (ValueError, TypeError, AttributeError):
            continue
        for measure in measures.instances.values():
            total = measure.months.get(key, MonthTotal())
            h, s, currency = total.hours, total.savings, total.currency or measure.currency
            since = parse_time(measure.open_since)
            if since is not None and since < end:
                still += 1
                extra = split_by_month(since, end).get(key, 0.0)
                h += extra
                s += extra * (measure.hourly_price or 0.0)
            if h <= 0:
                continue
            counted += 1
            hours += h
            if currency and measure.hourly_price is not None:
                savings[currency] = savings.get(currency, 0.0) + s
            else:
                unpriced += h
    return MeasuredMonth(
        month=key,
        stopped_hours=round(hours, 2),
        savings_by_currency={c: round(v, 2) for c, v in sorted(savings.items())},
        instances=counted,
        still_stopped=still,
        workspaces=len(names),
        unpriced_hours=round(unpriced, 2),
    )
