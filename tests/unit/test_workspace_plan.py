"""When the plan makes each stop due: after the heads-up for the nightly shutdown, at the boundary for a schedule
(an enforced schedule's stop after the heads-up, unless the schedule starts again first); starts at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.compute.arm import ComputeInstance
from shared.compute.ledger import iso
from shared.compute.reconcile import Decider, load_schedules
from shared.compute.reconcile_state import TICK, Claim, Progress, ReadState, WorkspaceState
from shared.compute.shutdown_run import ShutdownRun
from shared.compute.workspace_plan import reconcile_items, shutdown_items

WS = "sub/rg/ws"
NOTICE = timedelta(minutes=30)
EVENING = datetime(2026, 11, 30, 17, 40, tzinfo=UTC)  # Monday 18:40 in Berlin; the office closes at 19:00
BOUNDARY = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
SCHEDULES, _ = load_schedules(
    json.dumps(
        [
            {
                "name": "office",
                "timezone": "Europe/Berlin",
                "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
            },
            {
                "name": "guard",
                "timezone": "Europe/Berlin",
                "enforced": True,
                "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
            },
            {
                "name": "soon",
                "timezone": "Europe/Berlin",
                "enforced": True,
                "periods": [{"days": "mon-fri", "begin": "19:10", "end": "20:00"}],
            },
        ]
    )
)
assert SCHEDULES is not None


def _instance(name: str, state: str, schedule: str | None = None) -> ComputeInstance:
    tags = {"compute-schedule": schedule} if schedule else {}
    return ComputeInstance(WS, name, state, tags, created_by={"user_name": "ana@contoso.com"})


def test_a_nightly_stop_is_due_after_the_heads_up_and_the_rest_at_once() -> None:
    run = ShutdownRun((WS,), False, "opt-out", "keep-running", "keep-alive-until", 600, 5)
    items = shutdown_items(
        [_instance("ci-a", "Running"), _instance("ci-b", "Stopped")], run, EVENING, {}, "nightly", NOTICE
    )
    due = {item.name: (item.action, item.due_at) for item in items}
    assert due == {"ci-a": ("stop", iso(EVENING + NOTICE)), "ci-b": ("none", iso(EVENING))}
    assert items[0].created_by == {"user_name": "ana@contoso.com"}  # who is told when no owner tag names anyone


def _claimed(*keys: str, through: datetime) -> ReadState:
    schedules = {
        k: Progress(EVENING - TICK, Claim("run-1", through, EVENING + timedelta(minutes=3), EVENING)) for k in keys
    }
    return ReadState(WorkspaceState(WS, schedules), EVENING - TICK)


def test_a_schedule_stop_claimed_ahead_is_due_at_its_boundary_and_not_after_the_next_start() -> None:
    instances = [_instance("ci-office", "Running", "office")]
    items, claims = reconcile_items(
        instances,
        run_id="run-1",
        at=EVENING,
        tag="compute-schedule",
        decider=Decider(SCHEDULES, None, "compute-schedule"),
        read=_claimed("office", through=BOUNDARY),
        dry_run=False,
        notice=NOTICE,
    )
    [item] = items
    assert (item.action, item.due_at, item.boundary) == ("stop", iso(BOUNDARY), iso(BOUNDARY))
    assert item.not_after == iso(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))  # Tuesday 08:00 in Berlin
    assert claims == {"office": iso(BOUNDARY)}


def test_an_enforced_stop_waits_for_the_heads_up_unless_the_schedule_starts_again_first() -> None:
    night = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)  # 20:00 in Berlin: outside both enforced schedules
    instances = [_instance("ci-guard", "Running", "guard"), _instance("ci-soon", "Running", "soon")]
    late = datetime(2026, 11, 30, 17, 45, tzinfo=UTC)  # 18:45: `soon` starts at 19:10, before 18:45 + 30 min
    for at, expected in ((night, {"ci-guard": "stop", "ci-soon": "stop"}), (late, {"ci-soon": "none"})):
        read = ReadState(
            WorkspaceState(WS, {k: Progress(at - TICK, Claim("run-1", at, at + TICK, at)) for k in ("guard", "soon")}),
            at - TICK,
        )
        items, _ = reconcile_items(
            instances,
            run_id="run-1",
            at=at,
            tag="compute-schedule",
            decider=Decider(SCHEDULES, None, "compute-schedule"),
            read=read,
            dry_run=False,
            notice=NOTICE,
        )
        by_name = {item.name: item for item in items}
        for name, action in expected.items():
            assert by_name[name].action == action, (at, by_name[name].reason)
    assert by_name["ci-soon"].reason.endswith("before a heads-up of 30 min ends")
