"""The reconcile's window (last evaluated instant, now] and when it needs ARM at all (its request bodies:
tests/unit/test_web_inputs.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.compute.reconcile import (
    MAX_CATCH_UP,
    TICK,
    load_schedules,
    minute_instance_id,
    needs_listing,
    window_start,
)

NOW = datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC)  # Monday 08:00:20 in Berlin
OFFICE = json.dumps(
    [
        {
            "name": "office",
            "timezone": "Europe/Berlin",
            "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
        }
    ]
)


def test_window_starts_at_the_last_evaluated_instant_bounded() -> None:
    assert window_start(None, NOW) == NOW - TICK
    assert window_start((NOW - timedelta(hours=3)).isoformat(), NOW) == NOW - timedelta(hours=3)
    assert window_start((NOW - timedelta(days=30)).isoformat(), NOW) == NOW - MAX_CATCH_UP
    assert window_start((NOW + timedelta(hours=1)).isoformat(), NOW) == NOW  # a clock ahead: nothing twice


def test_no_arm_request_in_a_minute_without_a_boundary() -> None:
    schedules, error = load_schedules(OFFICE)
    assert error is None
    assert needs_listing(schedules, NOW - TICK, NOW)  # 08:00 is in the window
    assert not needs_listing(schedules, NOW, NOW + TICK)
    enforced, _ = load_schedules(OFFICE.replace('"periods"', '"enforced": true, "periods"'))
    assert needs_listing(enforced, NOW, NOW + TICK)


def test_a_broken_config_is_a_message_not_an_exception() -> None:
    schedules, error = load_schedules('[{"name": "x"}]')
    assert schedules is None and error is not None and "'x'" in error


def test_the_timer_runs_once_per_minute() -> None:
    assert minute_instance_id(NOW) == minute_instance_id(NOW + timedelta(seconds=30)) == "reconcile-20261130T0700"
