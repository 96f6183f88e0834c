"""Timer schedules as the Functions host reads them: NCrontab's own test cases, the extension's 5/6-field rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.timers import ScheduleError, has_seconds, occurrences_log, parse_schedule


def _at(text: str) -> datetime:
    """NCrontab's tests write times as dd/MM/yyyy HH:mm:ss."""
    return datetime.strptime(text, "%d/%m/%Y %H:%M:%S").replace(tzinfo=UTC)


# (start, expression, next) from atifaziz/NCrontab NCrontab.Tests/CrontabScheduleTests.cs `Evaluations`; 5-field
# cases are read without seconds and 6-field ones with, exactly as the timer extension decides.
NCRONTAB_CASES = [
    ("01/01/2003 00:00:00", "* * * * *", "01/01/2003 00:01:00"),
    ("31/12/2003 23:59:00", "* * * * *", "01/01/2004 00:00:00"),
    ("28/02/2004 23:59:00", "* * * * *", "29/02/2004 00:00:00"),
    ("01/01/2003 00:00:49", "45-47,48,49 * * * * *", "01/01/2003 00:01:45"),
    ("01/01/2003 00:00:57", "2/5 * * * * *", "01/01/2003 00:01:02"),
    ("24/02/2021 09:50:35", "* 0-1 10 * * *", "24/02/2021 10:00:00"),
    ("24/02/2021 09:50:35", "* 55 * * * *", "24/02/2021 09:55:00"),
    ("01/01/2003 00:57:30", "9 2/5 * * * *", "01/01/2003 01:02:09"),
    ("20/12/2003 10:00:00", " * 3/4 * * *", "20/12/2003 11:00:00"),
    ("07/01/2003 00:00:00", "30  *  1 * *", "01/02/2003 00:30:00"),
    ("10/07/2003 00:00:00", " *  * 30,31 * *", "30/07/2003 00:00:00"),
    ("31/01/2000 00:00:00", "0 0 15,30,31 * *", "15/02/2000 00:00:00"),
    ("30/04/2000 00:00:00", "0 0 15,30,31 * *", "15/05/2000 00:00:00"),
    ("01/12/2003 05:00:00", "10 * * 6 *", "01/06/2004 00:10:00"),
    ("01/07/2002 05:00:00", "10 * * February,April-Jun *", "01/02/2003 00:10:00"),
    (
        "11/03/1988 14:23:00",
        "20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
        "11/03/1988 15:20:00",
    ),
    ("26/06/2003 10:00:00", "30 6 * * sunday", "29/06/2003 06:30:00"),
    ("30/06/2003 18:15:00", "15 18 * * Mon", "07/07/2003 18:15:00"),
    # Day of month AND day of week: the 1st that is a Monday.
    ("01/01/2003 12:00:00", "45 16 1 * Mon", "01/09/2003 16:45:00"),
    ("01/09/2003 23:45:00", "45 16 1 * Mon", "01/12/2003 16:45:00"),
    ("29/02/2000 12:01:00", "1 12 29 2 *", "29/02/2004 12:01:00"),
    ("29/02/2004 12:01:00", "1 12 28 2 *", "28/02/2005 12:01:00"),
    ("01/01/2000 14:40:00", "40 14/1 * * *", "01/01/2000 15:40:00"),
]


@pytest.mark.parametrize(("start", "expression", "expected"), NCRONTAB_CASES)
def test_next_occurrence_matches_ncrontab(start: str, expression: str, expected: str) -> None:
    assert parse_schedule(expression).next_after(_at(start)) == _at(expected)


def test_both_day_fields_must_match_not_either() -> None:
    """`0 30 4 1,15 * 5`: a 1st or 15th that is a Friday (devhost fired on every 1st, 15th or Friday before)."""
    lines = occurrences_log("nightly", parse_schedule("0 30 4 1,15 * 5"), _at("29/11/2026 14:00:00"))
    assert lines == [
        "The next 5 occurrences of the 'nightly' schedule (Cron: '0 30 4 1,15 * 5') will be:",
        "01/01/2027 04:30:00Z",
        "01/15/2027 04:30:00Z",
        "10/01/2027 04:30:00Z",
        "10/15/2027 04:30:00Z",
        "09/01/2028 04:30:00Z",
    ]


def test_five_fields_have_no_seconds_as_in_the_timer_extension() -> None:
    assert not has_seconds("0 22 * * 1-5") and has_seconds("0 0 22 * * 1-5") and has_seconds("0 0 22 * * 1-5 x")
    lines = occurrences_log("weekdays", parse_schedule("0 22 * * 1-5"), _at("27/11/2026 23:00:00"))
    assert lines[1:] == [
        "11/30/2026 22:00:00Z",
        "12/01/2026 22:00:00Z",
        "12/02/2026 22:00:00Z",
        "12/03/2026 22:00:00Z",
        "12/04/2026 22:00:00Z",
    ]


def test_names_are_prefixes_of_the_english_names_in_any_case() -> None:
    schedule = parse_schedule("0 0 9 * Jan,jul SUN")
    assert schedule.next_after(_at("29/11/2026 14:00:00")) == _at("03/01/2027 09:00:00")
    assert parse_schedule("0 0 0 * * tu").next_after(_at("29/11/2026 00:00:00")) == _at("01/12/2026 00:00:00")


def test_reversed_range_is_swapped_as_ncrontab_does() -> None:
    assert parse_schedule("0 0 0 * * 5-1").next_after(_at("28/11/2026 12:00:00")) == _at("30/11/2026 00:00:00")


def test_timespan_schedule() -> None:
    lines = occurrences_log("every5", parse_schedule("00:05:00"), _at("29/11/2026 14:00:00"), count=2)
    assert lines == [
        "The next 2 occurrences of the 'every5' schedule (Interval: '00:05:00') will be:",
        "11/29/2026 14:05:00Z",
        "11/29/2026 14:10:00Z",
    ]
    assert parse_schedule("1.00:00:00").next_after(_at("29/11/2026 14:00:00")) == _at("30/11/2026 14:00:00")


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("0 0 22 * * 7", "7 is higher than the maximum allowable value for the [DayOfWeek] field. Value must be"),
        ("0 0 0 ? * *", "'?' is not a valid [Day] crontab field value"),
        ("0 0 0 L * *", "'L' is not a valid [Day] crontab field"),
        ("0 0 0 5W * *", "'5W' is not a valid [Day] crontab field expression"),
        ("0 0 0 * * 5#3", "'5#3' is not a valid [DayOfWeek] crontab field expression"),
        ("0 0 0 * * L", "'L' is not a known value name. Use one of the following: Sunday, Monday"),
        ("0 0 0 * Smarch *", "'Smarch' is not a known value name"),
        ("0 0 24 * * *", "24 is higher than the maximum allowable value for the [Hour] field"),
        ("every night", "must contain 6 components of a schedule"),
    ],
)
def test_refused_expressions_name_the_field(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    message = str(caught.value)
    assert message.startswith(
        f"The schedule expression '{expression}' was not recognized as a valid cron expression or timespan string."
    )
    assert reason in message
