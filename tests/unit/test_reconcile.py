"""The reconcile's schedules and its minute id (windows and claims: test_reconcile_state.py; its request bodies:
tests/unit/test_web_inputs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.compute.reconcile import load_schedules, minute_instance_id

NOW = datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC)  # Monday 08:00:20 in Berlin


def test_a_broken_config_is_a_message_not_an_exception() -> None:
    schedules, error = load_schedules('[{"name": "x"}]')
    assert schedules is None and error is not None and "'x'" in error


def test_the_timer_runs_once_per_minute() -> None:
    assert minute_instance_id(NOW) == minute_instance_id(NOW + timedelta(seconds=30)) == "reconcile-20261130T0700"
