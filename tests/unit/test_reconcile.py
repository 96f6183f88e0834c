"""The reconcile's schedules, its minute id and its request bodies (windows and claims: test_reconcile_state.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.compute.reconcile import (
    load_schedules,
    minute_instance_id,
    parse_preview_body,
    parse_reconcile_body,
)
from shared.compute.shutdown_run import RequestFieldError

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


def test_a_broken_config_is_a_message_not_an_exception() -> None:
    schedules, error = load_schedules('[{"name": "x"}]')
    assert schedules is None and error is not None and "'x'" in error


def test_the_timer_runs_once_per_minute() -> None:
    assert minute_instance_id(NOW) == minute_instance_id(NOW + timedelta(seconds=30)) == "reconcile-20261130T0700"


@pytest.mark.parametrize(
    ("body", "field"),
    [(b"", "at"), (b"[]", "body"), (b'{"at": "2026-11-30T08:00:00"}', "at"), (b'{"at": "x", "y": 1}', "y")],
)
def test_preview_body_errors_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(RequestFieldError) as err:
        parse_preview_body(body)
    assert err.value.field == field


def test_preview_and_reconcile_bodies() -> None:
    assert parse_preview_body(b'{"at": "2026-11-30T08:00:20+01:00"}') == NOW
    assert parse_reconcile_body(b"") is False
    assert parse_reconcile_body(b'{"dry_run": true}') is True
    with pytest.raises(RequestFieldError, match="dry_run"):
        parse_reconcile_body(b'{"dry_run": 1}')
