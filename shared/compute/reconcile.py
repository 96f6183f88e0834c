"""What one reconcile of the working-hours schedules is asked to do, and the decision per instance.

Pure: the plan activity (shared/compute/workspace_plan.py) and the preview endpoint decide with the same
`Decider`, with the evaluation instant and each schedule's window passed in (the preview's request is read by
shared.web.inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.compute.arm import ComputeInstance
from shared.compute.reconcile_state import TICK
from shared.compute.schedules import Schedule, ScheduleDecision, ScheduleError, ScheduleVerdict, parse_schedules
from shared.compute.schedules import schedule_tag_value as tag_value
from shared.payloads import Payload

__all__ = ["TICK", "Decider", "Planned", "ReconcileRun", "load_schedules", "plan", "unknown_schedule_note"]
KNOWN_SHOWN = 10  # schedule names a reason lists when a tag names none of them
UNKNOWN_POLICIES = ("nightly", "skip")


@dataclass(frozen=True)
class ReconcileRun(Payload):
    """The reconcile orchestration's input: small and JSON-able (COMPUTE_SCHEDULES is read by the activities: it
    may be larger than a Durable message should be)."""

    workspaces: tuple[str, ...]
    schedule_tag: str
    dry_run: bool
    poll_seconds: int
    timeout_seconds: int
    trigger: str = "timer"
    retry_attempts: int = 3
    trace: Mapping[str, str] = field(default_factory=dict)
    notice_minutes: float = 0.0  # NOTICE_MINUTES: stop boundaries are announced (and claimed) this long ahead
    notice_error: str | None = None  # why NOTICE_MINUTES could not be read (then no heads-up)


def load_schedules(text: str) -> tuple[dict[str, Schedule] | None, str | None]:
    """The schedules, or None and the error that says what is wrong (never raises: a mistyped schedule must
    not stop anything else)."""
    try:
        return parse_schedules(text), None
    except ScheduleError as err:
        return None, str(err)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unknown_schedule_note(tag: str, value: str, schedules: Mapping[str, Schedule], policy: str) -> str:
    """Why an instance whose schedule tag names no configured schedule is (not) stopped by the nightly policy."""
    names = sorted(s.name for s in schedules.values())
    known = ", ".join(names[:KNOWN_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > KNOWN_SHOWN else "")
    outcome = "nightly policy applies" if policy == "nightly" else "left alone (UNKNOWN_SCHEDULE_POLICY=skip)"
    return f"tag {tag}={value} names no schedule (known: {known or 'none defined'}); {outcome}"


class Decider:
    """The decisions of one run: one verdict per (schedule, window), reused for every instance following it."""

    def __init__(
        self, schedules: Mapping[str, Schedule] | None, config_error: str | None, tag: str, policy: str = "nightly"
    ) -> None:
        self.schedules, self.config_error, self.tag, self.policy = schedules, config_error, tag, policy
        self._verdicts: dict[tuple[str, datetime, datetime], ScheduleVerdict] = {}

    def schedule(self, name: str) -> Schedule | None:
        return (self.schedules or {}).get(name.lower())

    def verdict(self, schedule: Schedule, after: datetime, through: datetime) -> ScheduleVerdict:
        key = (schedule.name.lower(), after, through)
        if key not in self._verdicts:
            self._verdicts[key] = ScheduleVerdict.of(schedule, through, after)
        return self._verdicts[key]

    def decide(self, name: str, state: str, after: datetime, through: datetime) -> ScheduleDecision:
        if self.config_error is not None or self.schedules is None:
            return ScheduleDecision(name, "unknown", "none", f"left alone: {self.config_error}")
        schedule = self.schedule(name)
        if schedule is None:
            return ScheduleDecision(
                name, "unknown", "none", unknown_schedule_note(self.tag, name, self.schedules, self.policy)
            )
        return self.verdict(schedule, after, through).decide(state)


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
    policy: str = "nightly",
) -> list[Planned]:
    """The decision for every instance that follows a schedule over one window (the preview's regular tick);
    untagged ones are the nightly job's."""
    decider = Decider(schedules, config_error, tag, policy)
    out: list[Planned] = []
    for instance in instances:
        name = tag_value(instance.tags, tag)
        if name is not None:
            out.append(Planned(instance, decider.decide(name, instance.state, last_evaluated, at)))
    return out


def minute_instance_id(moment: datetime) -> str:
    """The timer's orchestration instance id: one run per minute, however often the timer fires."""
    return f"reconcile-{utc(moment):%Y%m%dT%H%M}"
