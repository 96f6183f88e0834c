"""Timer-trigger schedules as the Functions host reads them: NCrontab 3.x expressions, TimeSpan intervals, %SETTING%.

The timer extension (Azure/azure-webjobs-sdk-extensions `TimerSchedule.Create`, `CronSchedule`) tries NCrontab
first, with seconds unless the expression has exactly 5 fields, then `TimeSpan.TryParse`. The NCrontab parts below
port atifaziz/NCrontab 3.3 (with the fix of its issue #90): `CrontabFieldImpl`, `CrontabField.Accumulate` and
`CrontabSchedule.GetNextOccurrence`, so occurrences (day of month AND day of week, reversed ranges swapped, name
prefixes) and the messages are NCrontab's own.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# (kind as NCrontab names it, min, max, value names)
_MONTHS = ("January February March April May June July August September October November December").split()
_DAYS = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday".split()
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("Second", 0, 59, ()),
    ("Minute", 0, 59, ()),
    ("Hour", 0, 23, ()),
    ("Day", 1, 31, ()),
    ("Month", 1, 12, tuple(_MONTHS)),
    ("DayOfWeek", 0, 6, tuple(_DAYS)),
)
OCCURRENCE_FORMAT = "%m/%d/%Y %H:%M:%SZ"  # .NET "MM/dd/yyyy HH:mm:ssK" for a UTC time
_END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class ScheduleError(ValueError):
    """A schedule expression cannot be read; the message is the host's, with NCrontab's reason."""


class _CrontabError(ValueError):
    pass


class _ThrownError(_CrontabError):
    """Thrown while reading a value: NCrontab wraps these with the whole field expression."""


def resolve_setting_expression(expression: str, env: Mapping[str, str]) -> str:
    """`%NAME%` -> the value of app setting NAME, as the host resolves binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = env.get(name)
        if value is None or not value.strip():
            raise ScheduleError(
                f"'%{name}%' does not resolve to a value (schedule {expression!r}; set app setting {name})"
            )
        return value

    return re.sub(r"%([^%]+)%", lookup, expression)


@dataclass
class _Field:
    """A set of values of one field (NCrontab's CrontabField bit array)."""

    kind: str
    low: int
    high: int
    names: tuple[str, ...]
    values: set[int]

    def next(self, start: int) -> int:
        """The smallest value >= start, or -1 (NCrontab `Next`)."""
        candidates = [v for v in self.values if v >= start]
        return min(candidates) if candidates else -1

    def first(self) -> int:
        return min(self.values) if self.values else -1

    def contains(self, value: int) -> bool:
        return value in self.values

    # --- parsing (CrontabFieldImpl.InternalParse + CrontabField.Accumulate) --------------------------------
    def parse(self, text: str) -> None:
        try:
            self._parse(text)
        except _ThrownError as err:
            raise _CrontabError(f"'{text}' is not a valid [{self.kind}] crontab field expression: {err}") from err
        except _CrontabError:
            raise
        except ValueError as err:  # int.Parse's FormatException, wrapped as NCrontab wraps it
            raise _CrontabError(f"'{text}' is not a valid [{self.kind}] crontab field expression.") from err

    def _parse(self, text: str) -> None:
        if not text:
            raise _CrontabError("A crontab field value cannot be empty.")
        if text.find(",") > 0:
            for token in text.split(","):
                self._parse(token)
            return
        every = 1
        slash = text.find("/")
        if slash > 0:
            every = _dotnet_int(text[slash + 1 :])
            text = text[:slash]
        if text == "*":
            self._accumulate(-1, -1, every)
            return
        dash = text.find("-")
        if dash > 0:
            self._accumulate(self._value(text[:dash]), self._value(text[dash + 1 :]), every)
            return
        value = self._value(text)
        if slash <= 0:  # `14/1` is 14 to the maximum (NCrontab's tests: `40 14/1 * * *` fires at 15:40)
            self._accumulate(value, value, 1)
        else:
            self._accumulate(value, self.high, every)

    def _value(self, text: str) -> int:
        if not text:
            raise _ThrownError("A crontab field value cannot be empty.")
        if text[0].isdigit():
            return _dotnet_int(text)
        if not self.names:
            raise _ThrownError(
                f"'{text}' is not a valid [{self.kind}] crontab field value. It must be a numeric value between "
                f"{self.low} and {self.high} (all inclusive)."
            )
        for index, name in enumerate(self.names):
            if name.lower().startswith(text.lower()):  # CompareInfo.IsPrefix(name, text, IgnoreCase)
                return index + self.low
        raise _ThrownError(f"'{text}' is not a known value name. Use one of the following: {', '.join(self.names)}.")

    def _accumulate(self, start: int, end: int, interval: int) -> None:
        if start == end:
            if start < 0:
                if interval <= 1:
                    self.values.update(range(self.low, self.high + 1))
                    return
                start, end = self.low, self.high
            else:
                self._check(start)
        else:
            if start > end:  # NCrontab swaps a reversed range
                start, end = end, start
            if start < 0:
                start = self.low
            else:
                self._check(start)
            if end < 0:
                end = self.high
            else:
                self._check(end)
        self.values.update(range(start, end + 1, max(1, interval)))

    def _check(self, value: int) -> None:
        if value < self.low:
            raise _CrontabError(
                f"{value} is lower than the minimum allowable value for the [{self.kind}] field. "
                f"Value must be between {self.low} and {self.high} (all inclusive)."
            )
        if value > self.high:
            raise _CrontabError(
                f"{value} is higher than the maximum allowable value for the [{self.kind}] field. "
                f"Value must be between {self.low} and {self.high} (all inclusive)."
            )


def _dotnet_int(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise ValueError(text)
    return int(text)


def _field(index: int, text: str) -> _Field:
    kind, low, high, names = FIELDS[index]
    field = _Field(kind, low, high, names, set())
    field.parse(text)
    return field


def has_seconds(expression: str) -> bool:
    """The timer extension's rule (`CronSchedule.HasSeconds`): exactly 5 fields means no seconds."""
    return len(expression.split()) != 5


@dataclass
class CronSchedule:
    expression: str
    seconds: _Field | None
    minutes: _Field
    hours: _Field
    days: _Field
    months: _Field
    weekdays: _Field

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        tokens = expression.split()
        with_seconds = has_seconds(expression)
        expected = 6 if with_seconds else 5
        if len(tokens) != expected:
            parts = (
                "6 components of a schedule in the sequence of seconds, minutes, hours, days, months, and days of week"
            )
            raise _CrontabError(f"'{expression}' is an invalid crontab expression. It must contain {parts}.")
        offset = 0 if with_seconds else 1
        fields = [_field(i + offset, token) for i, token in enumerate(tokens)]
        if not with_seconds:
            fields.insert(0, None)  # type: ignore[arg-type]
        return cls(expression, *fields)

    def __str__(self) -> str:
        return f"Cron: '{self.expression}'"

    def next_after(self, base: datetime) -> datetime:
        """NCrontab `GetNextOccurrence(baseTime)`: the first occurrence strictly after `base` (seconds resolution)."""
        moment = base.astimezone(UTC).replace(microsecond=0)
        while True:
            found, retry_from = self._next(moment)
            if found is not None:
                return found
            moment = retry_from

    def _next(self, base: datetime) -> tuple[datetime | None, datetime]:
        nil = -1
        seconds = self.seconds or _Field("Second", 0, 59, (), {0})
        year, month, day, hour, minute = base.year, base.month, base.day, base.hour, base.minute
        second = seconds.next(base.second + 1)
        if second == nil:
            second = seconds.first()
            minute += 1
        minute = self.minutes.next(minute)
        if minute == nil:
            second = seconds.first()
            minute = self.minutes.first()
            hour += 1
        elif minute > base.minute:
            second = seconds.first()
        hour = self.hours.next(hour)
        if hour == nil:
            minute = self.minutes.first()
            hour = self.hours.first()
            day += 1
        elif hour > base.hour:
            second = seconds.first()
            minute = self.minutes.first()
        day = self.days.next(day)
        while True:  # RetryDayMonth
            if day == nil:
                second, minute, hour = seconds.first(), self.minutes.first(), self.hours.first()
                day = self.days.first()
                month += 1
            elif day > base.day:
                second, minute, hour = seconds.first(), self.minutes.first(), self.hours.first()
            month = self.months.next(month)
            if month == nil:
                second, minute, hour = seconds.first(), self.minutes.first(), self.hours.first()
                day = self.days.first()
                month = self.months.first()
                year += 1
            elif month > base.month:
                second, minute, hour = seconds.first(), self.minutes.first(), self.hours.first()
                day = self.days.first()
            date_changed = day != base.day or month != base.month or year != base.year
            if day > 28 and date_changed and day > calendar.monthrange(year, month)[1]:
                if year > _END.year:
                    raise ScheduleError(f"schedule {self.expression!r} never fires")
                day = nil
                continue
            break
        if year > _END.year:
            raise ScheduleError(f"schedule {self.expression!r} never fires")
        candidate = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        if self.weekdays.contains((candidate.weekday() + 1) % 7):  # .NET DayOfWeek: Sunday = 0
            return candidate, candidate
        return None, datetime(year, month, day, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (`ConstantSchedule`): every interval from the last occurrence."""

    interval: timedelta
    text: str

    def __str__(self) -> str:
        return f"Interval: '{self.text}'"

    def next_after(self, base: datetime) -> datetime:
        return base + self.interval


def _timespan(text: str) -> timedelta | None:
    """.NET `TimeSpan.TryParse` (invariant culture) for the forms schedules use: d, [d.]hh:mm[:ss[.fffffff]]."""
    stripped = text.strip()
    if re.fullmatch(r"\d+", stripped):
        return timedelta(days=int(stripped))
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?", stripped)
    if match is None:
        return None
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        return None
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds or 0),
        microseconds=int((fraction or "0").ljust(7, "0")) // 10,
    )


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """What `TimerSchedule.Create` accepts: NCrontab first, then a TimeSpan; else the host's error."""
    try:
        return CronSchedule.parse(expression)
    except _CrontabError as cron_error:
        interval = _timespan(expression)
        if interval is not None and interval > timedelta(0):
            return IntervalSchedule(interval, expression.strip())
        raise ScheduleError(
            f"The schedule expression '{expression}' was not recognized as a valid cron expression or timespan "
            f"string. NCrontab: {cron_error}"
        ) from cron_error


def next_occurrences(schedule: Schedule, after: datetime, count: int = 5) -> list[datetime]:
    found: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment)
    return found


def occurrences_log(
    function: str, schedule: Schedule, now: datetime, count: int = 5, label: str | None = None
) -> list[str]:
    """What the host logs for a timer at start (`TimerListener`): a header and one line per occurrence.

    `label` replaces the schedule's own text (`Cron: '<expression>'`) when that must not be shown."""
    lines = [f"The next {count} occurrences of the '{function}' schedule ({label or schedule}) will be:"]
    lines += [moment.strftime(OCCURRENCE_FORMAT) for moment in next_occurrences(schedule, now, count)]
    return lines
