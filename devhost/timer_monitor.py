"""Timer schedule monitoring (`useMonitor`), as the timer extension keeps it: past-due occurrences after downtime.

In Azure a timer's status (Last, Next, LastUpdated) is kept in storage (`StorageScheduleMonitor`) and checked when
the host starts (`ScheduleMonitor.CheckPastDueAsync`): if the recorded next occurrence has passed while the host
was down, the function runs once at start with `past_due` true. devhost keeps the same status as JSON files under
its data directory (`<data dir>/timers/<function>.json`), so `make run` after a night off catches up the same way.

`useMonitor` unset means true (TimerTriggerAttribute's default), except for schedules firing more than once a minute,
for which the extension turns monitoring off (`TimerSchedule.Create` / `ShouldDisableScheduleMonitor`). This module
ports Azure/azure-webjobs-sdk-extensions' ScheduleMonitor.cs and TimerListener.cs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devhost.timers import CronSchedule, IntervalSchedule, Schedule

log = logging.getLogger("devhost")

NEVER = datetime.min.replace(tzinfo=UTC)  # .NET's default(DateTime): "not recorded"


def uses_monitor(trigger: dict[str, Any], schedule: Schedule, now: datetime) -> bool:
    """Whether the host monitors this timer's schedule: `useMonitor` (default true), off for sub-minute schedules."""
    if trigger.get("useMonitor") is False:
        return False
    if isinstance(schedule, IntervalSchedule):
        return schedule.interval >= timedelta(minutes=1)
    return not _more_than_once_a_minute(schedule, now)


def _more_than_once_a_minute(schedule: CronSchedule, now: datetime) -> bool:
    """ShouldDisableScheduleMonitor: only `* * * * *` past the seconds can fire more than once a minute; then count
    the occurrences in the next minute."""
    fields = schedule.expression.split()
    if fields[-5:] != ["*"] * 5:
        return False
    first = schedule.next_after(now)
    return schedule.next_after(first) <= now + timedelta(minutes=1)


@dataclass
class ScheduleStatus:
    """What the monitor records of a timer: its last run, its next occurrence, and when that was computed."""

    last: datetime = NEVER
    next: datetime = NEVER
    last_updated: datetime = NEVER

    def to_json(self) -> dict[str, str]:
        """The shape the worker hands the function as `TimerRequest.schedule_status` (and the host stores)."""
        return {"Last": _iso(self.last), "Next": _iso(self.next), "LastUpdated": _iso(self.last_updated)}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ScheduleStatus:
        return cls(_parse(data["Last"]), _parse(data["Next"]), _parse(data["LastUpdated"]))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ScheduleMonitor:
    """One timer's status file: read at start, checked for a missed occurrence, written after every run."""

    def __init__(self, directory: Path, function: str):
        self.path = directory / f"{function}.json"
        self.function = function

    def load(self) -> ScheduleStatus | None:
        try:
            return ScheduleStatus.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("timer %s: ignoring an unreadable schedule status %s (%s)", self.function, self.path, err)
            return None

    def save(self, status: ScheduleStatus) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(status.to_json()), encoding="utf-8")
        partial.replace(self.path)  # a crash mid-write leaves the previous status, not half a file

    def check_past_due(self, now: datetime, schedule: Schedule) -> tuple[ScheduleStatus, timedelta]:
        """ScheduleMonitor.CheckPastDueAsync: the status to keep and how long the recorded next occurrence is
        overdue (zero when not past due). A changed schedule is re-based, not counted as past due."""
        status = self.load()
        if status is None:
            status = ScheduleStatus(NEVER, schedule.next_after(now), now)
            self.save(status)
        else:
            if status.last != NEVER:
                expected, updated = schedule.next_after(status.last), status.last
            elif status.last_updated != NEVER:
                expected, updated = schedule.next_after(status.last_updated), status.last_updated
            else:
                expected, updated = schedule.next_after(now), now
            if status.next != expected:
                if now > expected:
                    expected, updated = schedule.next_after(now), now
                status = ScheduleStatus(NEVER, expected, updated)
                self.save(status)
        overdue = now - status.next if now > status.next else timedelta(0)
        return status, overdue

    def record_run(self, invoked_at: datetime, schedule: Schedule, scheduled: datetime | None) -> ScheduleStatus:
        """TimerListener.InvokeJobFunction's bookkeeping: Last is the run (moved to the occurrence it served when it
        fired a little early), Next the following occurrence."""
        last = scheduled if scheduled is not None and scheduled > invoked_at else invoked_at
        status = ScheduleStatus(last, schedule.next_after(last), last)
        self.save(status)
        return status
