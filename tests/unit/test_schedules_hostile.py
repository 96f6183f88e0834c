"""COMPUTE_SCHEDULES as a hostile test wrote it (issue 19): huge numbers, look-alike day names, files that are not
time zones, and instants at the ends of datetime's range. Each is a clear schedule error or a safe answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.compute.reconcile import load_schedules
from shared.compute.schedules import (
    Schedule,
    ScheduleError,
    decide_scheduled,
    describe,
    next_start,
    parse_days,
    parse_schedules,
)

PERIOD = {"days": "mon-fri", "begin": "08:00", "end": "19:00"}


def config(**overrides: Any) -> dict[str, Any]:
    return {"name": "berlin-office", "timezone": "Europe/Berlin", "periods": [PERIOD], **overrides}


BIG = "9" * 5000


def with_number(number: str, **overrides: Any) -> str:
    """COMPUTE_SCHEDULES holding `number` (JSON number text) where an override says "@N@"."""
    return json.dumps([config(**overrides)]).replace('"@N@"', number)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (with_number(BIG, enforced="@N@"), "enforced"),
        (with_number(BIG, timezone="@N@"), "timezone"),
        (with_number(BIG, periods=[{**PERIOD, "begin": "@N@"}]), "periods[0].begin"),
        (with_number("1e999", periods=[{**PERIOD, "days": "@N@"}]), "periods[0].days"),
        (with_number("-" + BIG, name="@N@"), "[0].name"),
        ("[" + BIG + "]", "[0]"),
    ],
)
def test_a_5000_digit_number_is_a_schedule_error_naming_the_field(text: str, field: str) -> None:
    """Before: json.loads raised ValueError (Python's 4,300-digit limit), past every `except ScheduleError`: 500 on
    /api/schedules, the preview and the dashboard, and every reconcile failed."""
    with pytest.raises(ScheduleError) as raised:
        parse_schedules(text)
    message = str(raised.value)
    assert f"field {field!r}" in message and "number" in message
    assert len(message) < 400  # the number is not quoted whole
    schedules, error = load_schedules(text)  # what the endpoints, the dashboard and the reconciler call
    assert schedules is None and error == message


@pytest.mark.parametrize("days", ["monkey-fries", "mond", "sunny", "thurs", "tues-fri", "saturn"])
def test_day_names_are_matched_exactly(days: str) -> None:
    """Before: the first three letters decided, so 'monkey-fries' was mon-fri."""
    with pytest.raises(ScheduleError) as raised:
        parse_schedules(json.dumps([config(periods=[{**PERIOD, "days": days}])]))
    message = str(raised.value)
    assert "'berlin-office'" in message and "periods[0].days" in message
    assert "mon..sun (mon, tue, wed, thu, fri, sat, sun) or monday..sunday, exactly" in message


@pytest.mark.parametrize(
    ("days", "expected"),
    [("mon-fri", {0, 1, 2, 3, 4}), ("Monday-Friday", {0, 1, 2, 3, 4}), ("sat,SUNDAY", {5, 6}), ("thursday", {3})],
)
def test_short_and_full_day_names_are_accepted(days: str, expected: set[int]) -> None:
    assert parse_days(days, "s", "periods[0].days") == frozenset(expected)


@pytest.mark.parametrize(
    "zone", ["localtime", "posixrules", "Factory", "posix/Europe/Berlin", "right/UTC", "europe/berlin"]
)
def test_only_real_iana_zones_are_time_zones(zone: str) -> None:
    """Before: anything zoneinfo could open was a zone: the host's `localtime` file, `posixrules`, `Factory`."""
    with pytest.raises(ScheduleError) as raised:
        parse_schedules(json.dumps([config(timezone=zone)]))
    assert f"{zone!r} is not an IANA time zone" in str(raised.value)
    assert "'berlin-office'" in str(raised.value) and "'timezone'" in str(raised.value)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT-14", "US/Eastern"])
def test_iana_zones_and_their_links_are_accepted(zone: str) -> None:
    assert parse_schedules(json.dumps([config(timezone=zone)]))["berlin-office"].timezone == zone


EDGES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 3, 12, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(9999, 12, 28, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
@pytest.mark.parametrize("at", EDGES, ids=lambda d: d.isoformat())
def test_computing_at_the_ends_of_time_does_not_crash(zone: str, at: datetime) -> None:
    """Before: OverflowError from the preview (`at` in year 1 or 9999): a 500."""
    overnight = {"days": "daily", "begin": "22:00", "end": "06:00"}
    schedules = parse_schedules(json.dumps([config(timezone=zone, periods=[PERIOD, overnight], enforced=True)]))
    schedule: Schedule = schedules["berlin-office"]
    schedule.running_at(at)
    schedule.transitions(at - timedelta(minutes=1) if at.year > 1 else at, at)
    next_start(schedule, at)
    [described] = describe([schedule], at)
    json.dumps(described)
    decision = decide_scheduled(
        schedule_name="berlin-office",
        schedules=schedules,
        config_error=None,
        state="Running",
        at=at,
        last_evaluated=at - timedelta(minutes=1) if at.year > 1 else at,
    )
    assert decision.desired in ("Running", "Stopped")


def test_the_middle_of_time_is_unchanged_near_the_ends() -> None:
    schedule = parse_schedules(json.dumps([config(timezone="UTC")]))["berlin-office"]
    assert schedule.running_at(datetime(1, 1, 1, 9, tzinfo=UTC))  # a Monday, inside 08:00-19:00
    assert schedule.running_at(datetime(9999, 12, 31, 9, tzinfo=UTC))  # a Friday
    assert not schedule.running_at(datetime(9999, 12, 31, 20, tzinfo=UTC))
    assert [
        t.action for t in schedule.transitions(datetime(9999, 12, 30, 20, tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    ] == ["start", "stop"]
