"""What one reconcile of the working-hours schedules is asked to do, and its plan per instance.

Pure: the orchestrator (deterministic) and the preview endpoint call the same `plan`, with the evaluation
instant and the last evaluated instant passed in (the preview's request is read by shared.web.inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.compute.arm import ComputeInstance
from shared.compute.schedules import Schedule, ScheduleDecision, ScheduleError, decide_scheduled, parse_schedules
from shared.compute.schedules import schedule_tag_value as tag_value
from shared.payloads import Payload

TICK = timedelta(minutes=1)  # the reconcile timer's period: a first run's window reaches back one tick
MAX_CATCH_UP = timedelta(days=7)  # a longer outage is caught up as if it had lasted this long
STATE_BLOB = "reconcile/state.json"


@dataclass(frozen=True)
class ReconcileRun(Payload):
    """The reconcile orchestration's input: small and JSON-able."""

    workspaces: tuple[str, ...]
    schedules: str  # COMPUTE_SCHEDULES as configured (parsed by the orchestrator: an error is reported)
    schedule_tag: str
    dry_run: bool
    poll_seconds: int
    timeout_seconds: int
    trigger: str = "timer"
    retry_attempts: int = 3
    trace: Mapping[str, str] = field(default_factory=dict)


def load_schedules(text: str) -> tuple[dict[str, Schedule] | None, str | None]:
    """The schedules, or None and the error that says what is wrong (never raises: a mistyped schedule must
    not stop anything else)."""
    try:
        return parse_schedules(text), None
    except ScheduleError as err:
        return None, str(err)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_start(last_evaluated: str | None, at: datetime) -> datetime:
    """Where this reconcile's window of boundaries begins: the last evaluated instant, else one tick back."""
    now = utc(at)
    if not last_evaluated:
        return now - TICK
    last = utc(datetime.fromisoformat(last_evaluated))
    return min(max(last, now - MAX_CATCH_UP), now)


def needs_listing(schedules: Mapping[str, Schedule] | None, after: datetime, at: datetime) -> bool:
    """Whether any instance could be acted on: a boundary in the window or an enforced schedule. When not,
    the reconcile sends no ARM request at all (it runs every minute; most minutes hold no boundary)."""
    if schedules is None:
        return False
    return any(s.enforced or s.transitions(after, at) for s in schedules.values())


@dataclass(frozen=True)
class Planned:
    instance: ComputeInstance
    decision: ScheduleDecision


def plan(
    instances: Iterable[ComputeInstance],
    *,
    schedules: Mapping[str, Schedule] | None,
    config_error: str | None,
    tag: str,
    at: datetime,
    last_evaluated: datetime,
) -> list[Planned]:
    """The decision for every instance that follows a schedule (untagged ones are the nightly job's)."""
    out: list[Planned] = []
    for instance in instances:
        name = tag_value(instance.tags, tag)
        if name is None:
            continue
        decision = decide_scheduled(
            schedule_name=name,
            schedules=schedules,
            config_error=config_error,
            state=instance.state,
            at=at,
            last_evaluated=last_evaluated,
        )
        out.append(Planned(instance, decision))
    return out


def minute_instance_id(moment: datetime) -> str:
    """The timer's orchestration instance id: one run per minute, however often the timer fires."""
    return f"reconcile-{utc(moment):%Y%m%dT%H%M}"
