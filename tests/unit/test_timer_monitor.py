"""Timer schedule monitoring as the timer extension does it (ScheduleMonitor.CheckPastDueAsync, TimerListener)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from devhost.timer_monitor import NEVER, ScheduleMonitor, ScheduleStatus, uses_monitor
from devhost.timers import parse_schedule

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
NIGHTLY = parse_schedule("0 0 22 * * *")


def test_a_missed_occurrence_is_past_due_at_start_and_a_run_records_the_next_one(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path, "nightly")
    yesterday = datetime(2026, 12, 5, 22, tzinfo=UTC)
    monitor.save(ScheduleStatus(yesterday, NIGHTLY.next_after(yesterday), yesterday))  # devhost stopped since
    status, overdue = monitor.check_past_due(NOW, NIGHTLY)
    assert status.next == datetime(2026, 12, 6, 22, tzinfo=UTC)
    assert overdue == NOW - status.next
    after = monitor.record_run(NOW, NIGHTLY, scheduled=None)
    assert (after.last, after.next) == (NOW, datetime(2026, 12, 7, 22, tzinfo=UTC))
    assert monitor.check_past_due(NOW + timedelta(minutes=1), NIGHTLY)[1] == timedelta(0)  # caught up: once


def test_a_first_start_records_the_next_occurrence_and_is_not_past_due(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path, "nightly")
    status, overdue = monitor.check_past_due(NOW, NIGHTLY)
    assert (status.last, status.next, overdue) == (NEVER, datetime(2026, 12, 7, 22, tzinfo=UTC), timedelta(0))
    assert monitor.load() == status  # kept under the data directory


def test_a_changed_schedule_is_rebased_not_run_as_past_due(tmp_path: Path) -> None:
    monitor = ScheduleMonitor(tmp_path, "nightly")
    last = datetime(2026, 12, 1, 22, tzinfo=UTC)
    monitor.save(ScheduleStatus(last, datetime(2026, 12, 2, 6, tzinfo=UTC), last))  # recorded under another schedule
    status, overdue = monitor.check_past_due(NOW, NIGHTLY)
    assert overdue == timedelta(0) and status.next == datetime(2026, 12, 7, 22, tzinfo=UTC)


def test_use_monitor_is_on_unless_set_false_or_the_schedule_fires_more_than_once_a_minute() -> None:
    assert uses_monitor({}, NIGHTLY, NOW)  # unset means true (TimerTriggerAttribute)
    assert not uses_monitor({"useMonitor": False}, NIGHTLY, NOW)
    assert uses_monitor({"useMonitor": True}, parse_schedule("0 * * * * *"), NOW)  # once a minute
    assert not uses_monitor({"useMonitor": True}, parse_schedule("*/10 * * * * *"), NOW)
    assert not uses_monitor({}, parse_schedule("00:00:30"), NOW)  # a TimeSpan under a minute
