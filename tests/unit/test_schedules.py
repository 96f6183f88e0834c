"""Working-hours schedules: parsing with errors naming schedule and field, desired state, transitions, DST."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.compute.schedules import (
    Schedule,
    ScheduleError,
    decide_scheduled,
    next_start,
    parse_days,
    parse_schedules,
    schedule_tag_value,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _one(**overrides: Any) -> Schedule:
    raw: dict[str, Any] = {
        "name": "berlin-office",
        "timezone": "Europe/Berlin",
        "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
    }
    raw.update(overrides)
    return parse_schedules(json.dumps([raw]))[raw["name"].lower()]


def _at(zone: ZoneInfo, *parts: int) -> datetime:
    fields = [*parts, 0, 0, 0][:6]
    return datetime(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], tzinfo=zone)


# --- days ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon-wed,fri", {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Monday", {0}),
        (" TUE ", {1}),
        ("daily", set(range(7))),
        ("*", set(range(7))),
        ("sun-sun", {6}),
    ],
)
def test_days_take_names_ranges_and_lists(text: str, days: set[int]) -> None:
    assert parse_days(text, "s", "periods[0].days") == frozenset(days)


@pytest.mark.parametrize("text", ["", "weekdays", "mon-", "mon--fri", "1-5", "mo", "mon-fri-sat"])
def test_bad_days_name_the_schedule_and_field(text: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_days(text, "team-x", "periods[0].days")
    assert "team-x" in str(err.value) and "periods[0].days" in str(err.value) and "mon..sun" in str(err.value)


# --- parsing errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("{", ["not valid JSON"]),
        ('{"name": "x"}', ["expected a JSON array"]),
        ("[1]", ["[0]", "expected a schedule object"]),
        ('[{"timezone": "UTC", "periods": []}]', ["[0].name", "non-empty string"]),
        ('[{"name": "a", "periods": [{"days": "mon", "begin": "08:00", "end": "09:00"}]}]', ["'a'", "timezone"]),
        (
            '[{"name": "a", "timezone": "Mars/Olympus",'
            ' "periods": [{"days": "mon", "begin": "08:00", "end": "09:00"}]}]',
            ["'a'", "timezone", "IANA"],
        ),
        ('[{"name": "a", "timezone": "UTC", "periods": []}]', ["'a'", "periods", "non-empty array"]),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "8:00", "end": "09:00"}]}]',
            ["'a'", "periods[0].begin", "HH:MM"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "08:00", "end": "25:00"}]}]',
            ["periods[0].end", "HH:MM"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "24:00", "end": "09:00"}]}]',
            ["periods[0].begin"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "08:00", "end": "08:00"}]}]',
            ["periods[0].end", "equals begin"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "08:00"}]}]',
            ["periods[0].end", "missing"],
        ),
        (
            '[{"name": "a", "timezone": "UTC",'
            ' "periods": [{"days": "mon", "begin": "08:00", "end": "09:00", "x": 1}]}]',
            ["periods[0].x", "unknown field"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "enforced": "yes",'
            ' "periods": [{"days": "mon", "begin": "08:00", "end": "09:00"}]}]',
            ["'a'", "enforced", "true or false"],
        ),
        (
            '[{"name": "a", "timezone": "UTC", "periods": [{"days": "mon", "begin": "08:00", "end": "09:00"}]},'
            ' {"name": "A", "timezone": "UTC", "periods": [{"days": "mon", "begin": "08:00", "end": "09:00"}]}]',
            ["'A'", "name", "defined twice"],
        ),
    ],
)
def test_invalid_config_names_schedule_field_and_expectation(config: str, words: list[str]) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedules(config)
    message = str(err.value)
    assert message.startswith("COMPUTE_SCHEDULES")
    for word in words:
        assert word in message, message


def test_empty_setting_means_no_schedules() -> None:
    assert parse_schedules("") == {}
    assert parse_schedules(None) == {}


def test_24_00_end_and_round_trip() -> None:
    schedule = _one(periods=[{"days": "sat", "begin": "10:00", "end": "24:00"}])
    assert schedule.to_dict()["periods"] == [{"days": "sat", "begin": "10:00", "end": "24:00"}]
    assert schedule.running_at(_at(BERLIN, 2026, 11, 28, 23, 59))
    assert not schedule.running_at(_at(BERLIN, 2026, 11, 29, 0, 0))


# --- desired state ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "running"),
    [
        ((2026, 11, 30, 7, 59), False),  # Monday
        ((2026, 11, 30, 8, 0), True),
        ((2026, 11, 30, 18, 59), True),
        ((2026, 11, 30, 19, 0), False),
        ((2026, 12, 4, 12, 0), True),  # Friday
        ((2026, 12, 5, 12, 0), False),  # Saturday
    ],
)
def test_running_inside_periods_in_local_time(local: tuple[int, ...], running: bool) -> None:
    assert _one().running_at(_at(BERLIN, *local)) is running


def test_overnight_period_belongs_to_the_day_it_begins() -> None:
    night = _one(periods=[{"days": "fri", "begin": "22:00", "end": "06:00"}])
    assert night.running_at(_at(BERLIN, 2026, 12, 4, 23, 0))  # Friday night
    assert night.running_at(_at(BERLIN, 2026, 12, 5, 5, 59))  # early Saturday
    assert not night.running_at(_at(BERLIN, 2026, 12, 5, 6, 0))
    assert not night.running_at(_at(BERLIN, 2026, 12, 4, 5, 0))  # early Friday: Thursday is not a day


def test_adjacent_periods_make_no_transition() -> None:
    split = _one(
        periods=[{"days": "mon", "begin": "08:00", "end": "12:00"}, {"days": "mon", "begin": "12:00", "end": "17:00"}]
    )
    day = _at(BERLIN, 2026, 11, 30, 0, 0)
    actions = [(t.at.astimezone(BERLIN).hour, t.action) for t in split.transitions(day, day + timedelta(days=1))]
    assert actions == [(8, "start"), (17, "stop")]


def test_transitions_are_utc_instants_of_local_boundaries() -> None:
    schedule = _one()
    after = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    first = schedule.next_transitions(after, 2)
    assert [t.to_dict() for t in first] == [
        {"at": "2026-11-30T07:00:00Z", "local": "2026-11-30T08:00:00+01:00", "action": "start"},
        {"at": "2026-11-30T18:00:00Z", "local": "2026-11-30T19:00:00+01:00", "action": "stop"},
    ]


# --- DST ----------------------------------------------------------------------------------------------------------


def test_begin_on_the_day_of_the_spring_change_is_local() -> None:
    daily = _one(periods=[{"days": "daily", "begin": "08:00", "end": "19:00"}])
    # Europe/Berlin moves to summer time on Sunday 2026-03-29 at 02:00.
    before = daily.next_transitions(datetime(2026, 3, 28, 0, 0, tzinfo=UTC), 1)[0]
    on = daily.next_transitions(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), 1)[0]
    assert before.at == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    assert on.at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert on.to_dict()["local"] == "2026-03-29T08:00:00+02:00"


def test_autumn_change_in_new_york() -> None:
    ny = _one(name="ny", timezone="America/New_York", periods=[{"days": "mon-sun", "begin": "09:00", "end": "17:00"}])
    # 2026-11-01 is the fall-back Sunday in New York.
    assert [t.at for t in ny.next_transitions(datetime(2026, 10, 31, 0, 0, tzinfo=UTC), 4)] == [
        datetime(2026, 10, 31, 13, 0, tzinfo=UTC),
        datetime(2026, 10, 31, 21, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 14, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 22, 0, tzinfo=UTC),
    ]


def test_a_skipped_local_time_is_taken_with_the_old_offset() -> None:
    odd = _one(periods=[{"days": "sun", "begin": "02:30", "end": "05:00"}])
    start = odd.next_transitions(datetime(2026, 3, 28, 0, 0, tzinfo=UTC), 1)[0]
    assert start.at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 summer time


# --- reconcile decisions ------------------------------------------------------------------------------------------


def _decide(state: str, at: datetime, last: datetime, **schedule: Any) -> Any:
    sched = _one(**schedule)
    return decide_scheduled(
        schedule_name="Berlin-Office",
        schedules={sched.name.lower(): sched},
        config_error=None,
        state=state,
        at=at,
        last_evaluated=last,
    )


MONDAY_0800 = _at(BERLIN, 2026, 11, 30, 8, 0, 20)
MINUTE = timedelta(minutes=1)


def test_start_at_the_begin_boundary() -> None:
    decision = _decide("Stopped", MONDAY_0800, MONDAY_0800 - MINUTE)
    assert (decision.action, decision.desired) == ("start", "Running")
    assert "start boundary at 2026-11-30T08:00:00+01:00" in decision.reason


def test_transitions_only_leaves_a_user_started_instance_until_the_next_stop() -> None:
    night = _at(BERLIN, 2026, 11, 30, 22, 0)
    decision = _decide("Running", night, night - MINUTE)
    assert decision.action == "none" and "transitions only" in decision.reason
    enforced = _decide("Running", night, night - MINUTE, enforced=True)
    assert enforced.action == "stop" and "enforced" in enforced.reason


def test_missed_boundary_is_caught_up_once() -> None:
    late = _at(BERLIN, 2026, 11, 30, 9, 30)
    first = _decide("Stopped", late, _at(BERLIN, 2026, 11, 30, 6, 0))
    assert first.action == "start"
    again = _decide("Stopped", late + MINUTE, late)  # a user stopped it meanwhile: not started twice
    assert again.action == "none"


def test_job_running_is_never_stopped() -> None:
    stop_time = _at(BERLIN, 2026, 11, 30, 19, 0, 30)
    decision = _decide("JobRunning", stop_time, stop_time - MINUTE, enforced=True)
    assert decision.action == "none" and "JobRunning" in decision.reason


def test_unknown_schedule_and_invalid_config_leave_the_instance_alone() -> None:
    sched = _one()
    unknown = decide_scheduled(
        schedule_name="nope",
        schedules={sched.name.lower(): sched},
        config_error=None,
        state="Running",
        at=MONDAY_0800,
        last_evaluated=MONDAY_0800 - MINUTE,
    )
    assert unknown.action == "none" and "unknown schedule 'nope'" in unknown.reason
    broken = decide_scheduled(
        schedule_name="x",
        schedules=None,
        config_error="COMPUTE_SCHEDULES: bad",
        state="Running",
        at=MONDAY_0800,
        last_evaluated=MONDAY_0800 - MINUTE,
    )
    assert broken.action == "none" and "COMPUTE_SCHEDULES: bad" in broken.reason


def test_tag_lookup_is_case_insensitive_and_ignores_blank() -> None:
    assert schedule_tag_value({"Compute-Schedule": " berlin "}, "compute-schedule") == "berlin"
    assert schedule_tag_value({"compute-schedule": "  "}, "compute-schedule") is None


def test_next_start_after_a_friday_stop_is_monday() -> None:
    friday_evening = _at(BERLIN, 2026, 12, 4, 19, 0)
    assert next_start(_one(), friday_evening) == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


# --- properties ---------------------------------------------------------------------------------------------------

ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"])
CLOCK = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])).map(lambda hm: f"{hm[0]:02d}:{hm[1]:02d}")
PERIOD = st.fixed_dictionaries(
    {"days": st.sampled_from(["mon-fri", "sat,sun", "daily", "fri-mon", "wed"]), "begin": CLOCK, "end": CLOCK}
).filter(lambda p: p["begin"] != p["end"])
INSTANTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(zone=ZONES, periods=st.lists(PERIOD, min_size=1, max_size=3), at=INSTANTS)
def test_transitions_agree_with_the_desired_state(zone: str, periods: list[dict[str, str]], at: datetime) -> None:
    schedule = _one(timezone=zone, periods=periods)
    day_later = at + timedelta(days=1)
    transitions = schedule.transitions(at, day_later)
    running = schedule.running_at(at)
    for t in transitions:
        # each transition flips the state, and the state just before/after it agrees
        assert t.action == ("stop" if running else "start")
        assert schedule.running_at(t.at) is (t.action == "start")
        assert schedule.running_at(t.at - timedelta(microseconds=1)) is running
        running = not running
    assert schedule.running_at(day_later) is running
