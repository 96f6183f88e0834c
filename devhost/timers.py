"""Timer-trigger schedules: 6-field NCRONTAB expressions (seconds first), `%SETTING%` names, TimeSpan intervals."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = {name: i + 1 for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}


class ScheduleError(ValueError):
    """A schedule expression cannot be parsed; the message quotes it and says what was expected."""


def resolve_setting_expression(expression: str, env: Mapping[str, str]) -> str:
    """`%NAME%` -> the value of app setting NAME, as the host resolves binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = env.get(name)
        if value is None or not value.strip():
            raise ScheduleError(f"schedule {expression!r} names app setting {name}, which is not set")
        return value

    return re.sub(r"%([^%]+)%", lookup, expression)


def _parse_field(text: str, low: int, high: int, names: Mapping[str, int], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{what} step {step_text!r} must be a positive integer")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, names, what), _value(last, names, what)
        else:
            start = _value(part, names, what)
            end = high if step > 1 else start
        if what == "day of week" and end == 7:
            end = 6
            values.add(0)  # 7 is also Sunday
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"{what} {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: Mapping[str, int], what: str) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    if key.isdigit():
        return int(key)
    raise ScheduleError(f"{what} value {text!r} is not a number")


@dataclass(frozen=True)
class Schedule:
    """A parsed timer schedule that yields its next occurrence after a given UTC time."""

    expression: str
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    day_restricted: bool = False
    weekday_restricted: bool = False
    interval: timedelta | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        if re.fullmatch(r"\d{1,2}:\d{2}:\d{2}", text):
            hours, minutes, seconds = (int(p) for p in text.split(":"))
            interval = timedelta(hours=hours, minutes=minutes, seconds=seconds)
            if interval.total_seconds() <= 0:
                raise ScheduleError(f"schedule {expression!r}: a TimeSpan interval must be positive")
            return cls(expression, interval=interval)
        fields = text.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"schedule {expression!r} has {len(fields)} fields; expected 6 "
                "(second minute hour day month day-of-week), e.g. '0 0 22 * * *'"
            )
        sec, minute, hour, day, month, weekday = fields
        return cls(
            expression,
            seconds=_parse_field(sec, 0, 59, {}, "second"),
            minutes=_parse_field(minute, 0, 59, {}, "minute"),
            hours=_parse_field(hour, 0, 23, {}, "hour"),
            days=_parse_field(day, 1, 31, {}, "day of month"),
            months=_parse_field(month, 1, 12, _MONTHS, "month"),
            weekdays=_parse_field(weekday, 0, 7, _DAYS, "day of week"),
            day_restricted=day not in {"*", "?"},
            weekday_restricted=weekday not in {"*", "?"},
        )

    def _day_matches(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        in_days = moment.day in self.days
        in_weekdays = (moment.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_days or in_weekdays  # cron semantics: either restriction admits the day
        return in_days and in_weekdays

    def next_after(self, after: datetime) -> datetime:
        after = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
        if self.interval is not None:
            return after + self.interval
        start = after.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(366 * 8):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        for second in sorted(self.seconds):
                            candidate = day.replace(hour=hour, minute=minute, second=second)
                            if candidate >= start:
                                return candidate
            day += timedelta(days=1)
        raise ScheduleError(f"schedule {self.expression!r} never fires")
