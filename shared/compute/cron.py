"""The next occurrence of an NCRONTAB expression (as the Functions timer reads SHUTDOWN_SCHEDULE), in UTC.

5 fields (no seconds) or 6 (seconds first); `*`, lists, ranges, steps, month and day names; day of month AND
day of week must both match (NCrontab's rule, not Vixie cron's OR). Used to estimate hours saved by a stop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_NAMES = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
    "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}  # fmt: skip
_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _value(text: str) -> int:
    return _NAMES[text.lower()] if text.lower() in _NAMES else int(text)


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first), _value(last)
        else:
            start = _value(base)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"{part!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def next_occurrence(expression: str, after: datetime, horizon_days: int = 366) -> datetime | None:
    """The first instant strictly after `after` that matches, or None (also for a malformed expression)."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        return None
    try:
        sec, minute, hour, dom, month, dow = (_field(f, lo, hi) for f, (lo, hi) in zip(fields, _BOUNDS, strict=True))
    except (ValueError, KeyError):
        return None
    start = (after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)).replace(microsecond=0)
    day = start.replace(hour=0, minute=0, second=0)
    for _ in range(horizon_days + 1):
        if day.day in dom and day.month in month and (day.weekday() + 1) % 7 in dow:
            for h in sorted(hour):
                for m in sorted(minute):
                    for s in sorted(sec):
                        moment = day.replace(hour=h, minute=m, second=s)
                        if moment > start:
                            return moment
        day += timedelta(days=1)
    return None
