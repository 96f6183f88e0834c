"""Named working-hours schedules (`COMPUTE_SCHEDULES`): parsing, the desired state at an instant, transitions.

Pure: no I/O, no clock (every instant is passed in). A schedule has an IANA time zone and periods of local
wall-clock time; an instance runs while any period covers the instant. A period whose begin is after its end
runs over midnight (it belongs to the day it begins on). Local times are turned into instants with zoneinfo,
so an 08:00 begin is 08:00 local on the day of a DST change too. A local time that does not exist (the hour
skipped in spring) is taken with the offset before the change (zoneinfo's fold=0): 02:30 becomes 03:30 summer
time; a local time that happens twice (autumn) is its first occurrence.

Every computation is total over datetime's range: near year 1 or 9999 the days that cannot be represented in
the schedule's zone simply have no periods (no OverflowError reaches a caller).
"""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.errors import SettingsError
from shared.payloads import Payload

Action = Literal["start", "stop"]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {name: index for names in (DAY_NAMES, FULL_DAY_NAMES) for index, name in enumerate(names)}
DAYS_EXPECTED = (
    "days named mon..sun (mon, tue, wed, thu, fri, sat, sun) or monday..sunday, exactly: one day, a range "
    "(mon-fri), a comma list (mon,wed,fri), or daily"
)
# In the IANA database but not a place's time: "Local time zone must be set" (tzdata's own words).
_NOT_ZONES = frozenset({"Factory"})
_TIME_RE = re.compile(r"^(?P<h>[01]\d|2[0-4]):(?P<m>[0-5]\d)$")
SCHEDULE_FIELDS = frozenset({"name", "timezone", "periods", "enforced", "description"})
PERIOD_FIELDS = frozenset({"days", "begin", "end"})
MAX_SCHEDULES = 100
MAX_PERIODS = 50
MAX_NAME = 256  # a schedule name is a tag value: Azure's tag values have at most 256 characters


class ScheduleError(SettingsError):
    """COMPUTE_SCHEDULES is malformed; the message names the schedule, the field and what was expected."""

    def __init__(self, schedule: str | None, field_name: str, message: str) -> None:
        where = f"schedule {schedule!r}" if schedule else "COMPUTE_SCHEDULES"
        super().__init__(f"COMPUTE_SCHEDULES: {where}, field {field_name!r}: {message}")
        self.schedule = schedule
        self.field = field_name


@dataclass(frozen=True)
class Period:
    """Days of the week (0 = Monday) and a local begin/end; `end` 24:00 is the next midnight."""

    days: frozenset[int]
    begin: time
    end: time | None  # None: 24:00
    text: str

    @property
    def overnight(self) -> bool:
        return self.end is not None and self.end <= self.begin

    def intervals(self, zone: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
        """The UTC interval this period covers when it begins on local `day` (none when the day is not one)."""
        if day.weekday() not in self.days:
            return []
        try:
            begin = _instant(zone, day, self.begin)
            end = _instant(zone, day + timedelta(days=1), time(0)) if self.end is None else None
            if end is None:
                assert self.end is not None
                end = _instant(zone, day + timedelta(days=1) if self.overnight else day, self.end)
        except OverflowError:  # the first or last days of datetime's range, not representable in this zone
            return []
        return [(begin, end)] if end > begin else []

    def to_dict(self) -> dict[str, str]:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        end = "24:00" if self.end is None else f"{self.end:%H:%M}"
        return {"days": days, "begin": f"{self.begin:%H:%M}", "end": end}


@dataclass(frozen=True)
class Schedule:
    name: str
    timezone: str
    periods: tuple[Period, ...]
    enforced: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Merged UTC running intervals that touch [start, end] (adjacent periods make one interval)."""
        zone = self.zone
        first = _shifted(_local_date(start, zone), -2)
        last = _shifted(_local_date(end, zone), 1)
        raw: list[tuple[datetime, datetime]] = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            for period in self.periods:
                raw.extend(period.intervals(zone, day))
        raw.sort()
        merged: list[tuple[datetime, datetime]] = []
        for begin, finish in raw:
            if merged and begin <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
            else:
                merged.append((begin, finish))
        return merged

    def running_at(self, at: datetime) -> bool:
        """Whether an instance following this schedule should be running at the instant `at`."""
        moment = _utc(at)
        return any(b <= moment < e for b, e in self.intervals(moment, moment))

    def transitions(self, after: datetime, until: datetime) -> list[Transition]:
        """Every change of the desired state in (after, until], in order (adjacent periods make none)."""
        low, high = _utc(after), _utc(until)
        out: list[Transition] = []
        for begin, end in self.intervals(low, high):
            if low < begin <= high:
                out.append(Transition(begin, "start", self))
            if low < end <= high:
                out.append(Transition(end, "stop", self))
        out.sort(key=lambda t: t.at)
        return out

    def next_transitions(self, after: datetime, count: int = 4, horizon_days: int = 15) -> list[Transition]:
        """The next `count` transitions after `after` (a schedule with no period in the horizon has none)."""
        low = _utc(after)
        found: list[Transition] = []
        window, horizon = low, _later(low, timedelta(days=horizon_days))
        while len(found) < count and window < horizon:
            upper = _later(window, timedelta(days=3))
            found.extend(self.transitions(window, upper))
            window = upper
        return found[:count]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timezone": self.timezone,
            "periods": [p.to_dict() for p in self.periods],
            "enforced": self.enforced,
        }


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC
    action: Action
    schedule: Schedule

    def to_dict(self) -> dict[str, str]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "local": self.at.astimezone(self.schedule.zone).isoformat(),
            "action": self.action,
        }


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:30+01:00 is before datetime's first UTC instant
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


_LAST = datetime.max.replace(tzinfo=UTC)


def _later(moment: datetime, step: timedelta) -> datetime:
    """`moment + step`, or the last representable instant."""
    return moment + step if _LAST - moment > step else _LAST


def _shifted(day: date, days: int) -> date:
    """`day` moved by `days`, kept within date's range."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.min if days < 0 else date.max


def _local_date(moment: datetime, zone: ZoneInfo) -> date:
    """The local date of an instant, or its UTC date where the local one is out of range (year 1 west of UTC)."""
    try:
        return _utc(moment).astimezone(zone).date()
    except OverflowError:
        return _utc(moment).date()


def local_text(moment: datetime, zone: ZoneInfo) -> str:
    """`Fri 19:00` in the zone (in UTC where the local time is out of datetime's range)."""
    try:
        return f"{_utc(moment).astimezone(zone):%a %H:%M}"
    except OverflowError:
        return f"{_utc(moment):%a %H:%M} UTC"


def _instant(zone: ZoneInfo, day: date, clock: time) -> datetime:
    # fold=0: a skipped local time takes the offset before the change, a repeated one its first occurrence.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


class JsonNumber:
    """A number as COMPUTE_SCHEDULES wrote it, kept as text: no field of a schedule is a number, so it is only ever
    quoted in an error (and a 5,000-digit integer must not fail json.loads on Python's digit limit instead)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) <= 24 else f"{self.text[:20]}... ({len(self.text)} characters)"


def _shown(value: Any) -> str:
    """`value` quoted for a message, at most about 60 characters of it."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:56]}... ({len(text)} characters)"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, JsonNumber):
        return "number"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _day(name: str, schedule: str, field_name: str, item: str) -> int:
    day = _DAYS.get(name)
    if day is None:
        raise ScheduleError(schedule, field_name, f"{_shown(item)} is not a day; expected {DAYS_EXPECTED}")
    return day


def parse_days(text: Any, schedule: str, field_name: str) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `monday`, `mon-wed,fri`, `fri-mon` (wraps over the week end), `daily`/`*`.

    Names are matched exactly (any letter case): `monkey-fries` is not `mon-fri`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(schedule, field_name, f"expected {DAYS_EXPECTED}, got {_type_name(text)} {_shown(text)}")
    value = text.strip().lower()
    if value in ("*", "daily", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in value.split(","):
        item = part.strip()
        bounds = [b.strip() for b in item.split("-")]
        if len(bounds) > 2:
            raise ScheduleError(schedule, field_name, f"{_shown(item)} is not a day; expected {DAYS_EXPECTED}")
        first, last = (_day(b, schedule, field_name, item) for b in (bounds[0], bounds[-1]))
        day = first
        while True:
            days.add(day)
            if day == last:
                break
            day = (day + 1) % 7
    return frozenset(days)


def _parse_clock(text: Any, schedule: str, field_name: str, allow_24: bool) -> time | None:
    expected = "a local time HH:MM (00:00..23:59" + (", or 24:00)" if allow_24 else ")")
    if not isinstance(text, str):
        raise ScheduleError(schedule, field_name, f"expected {expected}, got {_type_name(text)} {_shown(text)}")
    match = _TIME_RE.match(text.strip())
    if not match or (match["h"] == "24" and (not allow_24 or match["m"] != "00")):
        raise ScheduleError(schedule, field_name, f"expected {expected}, got {_shown(text)}")
    if match["h"] == "24":
        return None
    return time(int(match["h"]), int(match["m"]))


def _parse_period(raw: Any, schedule: str, index: int) -> Period:
    where = f"periods[{index}]"
    if not isinstance(raw, dict):
        raise ScheduleError(schedule, where, f"expected an object with days, begin, end, got {_type_name(raw)}")
    unknown = sorted(set(raw) - PERIOD_FIELDS)
    if unknown:
        raise ScheduleError(schedule, f"{where}.{unknown[0]}", "unknown field; expected days, begin, end")
    for name in ("days", "begin", "end"):
        if name not in raw:
            raise ScheduleError(schedule, f"{where}.{name}", "missing; every period needs days, begin and end")
    days = parse_days(raw["days"], schedule, f"{where}.days")
    begin = _parse_clock(raw["begin"], schedule, f"{where}.begin", allow_24=False)
    end = _parse_clock(raw["end"], schedule, f"{where}.end", allow_24=True)
    assert begin is not None
    if end == begin:
        raise ScheduleError(schedule, f"{where}.end", f"equals begin {_shown(raw['begin'])}; expected a different time")
    return Period(days, begin, end, f"{raw['days']} {raw['begin']}-{raw['end']}")


def _parse_schedule(raw: Any, index: int) -> Schedule:
    if not isinstance(raw, dict):
        raise ScheduleError(None, f"[{index}]", f"expected a schedule object, got {_type_name(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(None, f"[{index}].name", f"expected a non-empty string, got {_type_name(name)}")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ScheduleError(None, f"[{index}].name", f"{_shown(name)} is longer than {MAX_NAME} characters")
    unknown = sorted(set(raw) - SCHEDULE_FIELDS)
    if unknown:
        raise ScheduleError(name, unknown[0], f"unknown field; expected {', '.join(sorted(SCHEDULE_FIELDS))}")
    zone_name = raw.get("timezone")
    if not isinstance(zone_name, str) or not zone_name.strip():
        shown = f"{_type_name(zone_name)} {_shown(zone_name)}"
        raise ScheduleError(name, "timezone", f"expected an IANA time zone such as 'Europe/Berlin', got {shown}")
    if zone_name.strip() not in iana_zones():
        raise ScheduleError(
            name,
            "timezone",
            f"{_shown(zone_name)} is not an IANA time zone; expected a name of the IANA database such as "
            "'Europe/Berlin' or 'UTC' (exact letter case)",
        )
    try:
        ZoneInfo(zone_name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(name, "timezone", f"{_shown(zone_name)} cannot be loaded on this host") from None
    periods = raw.get("periods")
    if not isinstance(periods, list) or not periods:
        raise ScheduleError(name, "periods", f"expected a non-empty array of periods, got {_type_name(periods)}")
    if len(periods) > MAX_PERIODS:
        raise ScheduleError(name, "periods", f"{len(periods)} periods; at most {MAX_PERIODS} are accepted")
    enforced = raw.get("enforced", False)
    if not isinstance(enforced, bool):
        raise ScheduleError(name, "enforced", f"expected true or false, got {_type_name(enforced)} {_shown(enforced)}")
    return Schedule(
        name=name,
        timezone=zone_name.strip(),
        periods=tuple(_parse_period(p, name, i) for i, p in enumerate(periods)),
        enforced=enforced,
    )


def parse_schedules(text: str | None) -> dict[str, Schedule]:
    """COMPUTE_SCHEDULES (a JSON array) -> schedules by lower-cased name; ScheduleError says what is wrong."""
    if text is None or not text.strip():
        return {}
    try:
        # Numbers stay text (JsonNumber): none is valid anywhere in a schedule, so each is reported where it
        # stands, with its schedule and field, however long it is.
        data = json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=JsonNumber)
    except json.JSONDecodeError as err:
        raise ScheduleError(
            None, "(json)", f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise ScheduleError(None, "(json)", "nested too deeply; expected an array of schedules") from None
    if not isinstance(data, list):
        raise ScheduleError(None, "(top level)", f"expected a JSON array of schedules, got {_type_name(data)}")
    if len(data) > MAX_SCHEDULES:
        raise ScheduleError(None, "(top level)", f"{len(data)} schedules; at most {MAX_SCHEDULES} are accepted")
    schedules: dict[str, Schedule] = {}
    for index, raw in enumerate(data):
        schedule = _parse_schedule(raw, index)
        key = schedule.name.lower()
        if key in schedules:
            raise ScheduleError(schedule.name, "name", "defined twice; expected unique names (case-insensitive)")
        schedules[key] = schedule
    return schedules


@functools.cache
def iana_zones() -> frozenset[str]:
    """The zone names of the IANA database (the `tzdata` package's list; the system's when it is missing), less
    `Factory`. Not `localtime` or `posixrules`, which zoneinfo also opens: files of a system, not zones."""
    try:
        from importlib import resources

        names = frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ModuleNotFoundError, OSError):
        names = frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}
    return names - _NOT_ZONES


def schedule_tag_value(tags: Mapping[str, str], tag: str) -> str | None:
    """The schedule an instance opts into with `tag` (tag names are case-insensitive in Azure), or None."""
    wanted = tag.lower()
    for key, value in tags.items():
        if key.lower() == wanted and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class ScheduleDecision(Payload):
    """What a reconcile at an instant does with one scheduled instance, and why."""

    schedule: str
    desired: Literal["Running", "Stopped", "unknown"]
    action: Literal["start", "stop", "none"]
    reason: str


def decide_scheduled(
    *,
    schedule_name: str,
    schedules: Mapping[str, Schedule] | None,
    config_error: str | None,
    state: str,
    at: datetime,
    last_evaluated: datetime,
) -> ScheduleDecision:
    """Act on the transitions in (last_evaluated, at] (AWS Instance Scheduler's default), or on every evaluation
    when the schedule is `enforced`. A missed boundary is caught up by the first reconcile after it, once: the
    next reconcile's window starts where this one ended. JobRunning is never stopped."""
    if config_error is not None or schedules is None:
        return ScheduleDecision(schedule_name, "unknown", "none", f"left alone: {config_error}")
    schedule = schedules.get(schedule_name.lower())
    if schedule is None:
        known = ", ".join(sorted(s.name for s in schedules.values())) or "none defined"
        return ScheduleDecision(
            schedule_name, "unknown", "none", f"unknown schedule {schedule_name!r} (COMPUTE_SCHEDULES has: {known})"
        )
    return ScheduleVerdict.of(schedule, at, last_evaluated).decide(state)


@dataclass(frozen=True)
class ScheduleVerdict:
    """What a schedule says over one window, before any instance's state: computed once per (schedule, window) and
    reused for every instance that follows it (the intervals are the costly part; a state adds a comparison)."""

    schedule: Schedule
    running: bool
    when: str  # the evaluation instant in the schedule's zone, as reasons show it
    crossed: tuple[Transition, ...]

    @classmethod
    def of(cls, schedule: Schedule, at: datetime, last_evaluated: datetime) -> ScheduleVerdict:
        crossed = tuple(schedule.transitions(last_evaluated, at))
        return cls(schedule, schedule.running_at(at), f"{local_text(at, schedule.zone)} {schedule.timezone}", crossed)

    @property
    def boundary(self) -> Transition | None:
        """The last boundary in the window (the one an action is for), if any."""
        return self.crossed[-1] if self.crossed else None

    def decide(self, state: str) -> ScheduleDecision:
        schedule, running, crossed = self.schedule, self.running, self.crossed
        desired: Literal["Running", "Stopped"] = "Running" if running else "Stopped"
        inside = "inside a period" if running else "outside every period"
        if not schedule.enforced and not crossed:
            if (running and state == "Running") or (not running and state == "Stopped"):
                return ScheduleDecision(
                    schedule.name, desired, "none", f"{state}, as desired ({inside} at {self.when})"
                )
            return ScheduleDecision(
                schedule.name,
                desired,
                "none",
                f"no boundary since the last reconcile ({inside} at {self.when}); transitions only: {state} left alone",
            )
        basis = (
            "enforced"
            if schedule.enforced and not crossed
            else f"{crossed[-1].action} boundary at {crossed[-1].to_dict()['local']}"
        )
        if running:
            if state == "Stopped":
                return ScheduleDecision(schedule.name, desired, "start", f"start: {basis} ({inside} at {self.when})")
            return ScheduleDecision(schedule.name, desired, "none", f"{state}: nothing to start ({basis})")
        if state == "JobRunning":
            return ScheduleDecision(
                schedule.name, desired, "none", f"JobRunning: a job is running on it, not stopped ({basis})"
            )
        if state == "Running":
            return ScheduleDecision(schedule.name, desired, "stop", f"stop: {basis} ({inside} at {self.when})")
        return ScheduleDecision(schedule.name, desired, "none", f"{state}: nothing to stop ({basis})")


def next_start(schedule: Schedule, after: datetime) -> datetime | None:
    """When an instance stopped at `after` is next started by the schedule (None within the horizon)."""
    for transition in schedule.next_transitions(after, count=8):
        if transition.action == "start":
            return transition.at
    return None


def describe(schedules: Iterable[Schedule], at: datetime, count: int = 4) -> list[dict[str, Any]]:
    """Each schedule with its next transitions (for GET /api/schedules)."""
    return [
        {
            **s.to_dict(),
            "running_now": s.running_at(at),
            "next_transitions": [t.to_dict() for t in s.next_transitions(at, count)],
        }
        for s in schedules
    ]


def sorted_schedules(schedules: Mapping[str, Schedule]) -> Sequence[Schedule]:
    return sorted(schedules.values(), key=lambda s: s.name.lower())
