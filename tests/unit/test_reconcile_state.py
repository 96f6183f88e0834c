"""The reconciler's progress per workspace: claims, leases, releases, and damaged state repaired and named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.compute.reconcile import Decider, load_schedules, plan, unknown_schedule_note
from shared.compute.reconcile_state import (
    LEASE,
    REPAIR_CATCH_UP,
    TICK,
    Claim,
    Progress,
    ReadState,
    WorkspaceState,
    legacy_default,
    open_workspace,
    read_state,
    release,
    renew,
    stop_ahead,
)

NOW = datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC)  # Monday 08:00:20 in Berlin: the office's start is 20 s ago
_LOADED, _ = load_schedules(
    json.dumps(
        [
            {
                "name": "office",
                "timezone": "Europe/Berlin",
                "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
            },
            {
                "name": "night",
                "timezone": "Europe/Berlin",
                "periods": [{"days": "mon-fri", "begin": "20:00", "end": "23:00"}],
            },
            {
                "name": "strict",
                "timezone": "UTC",
                "enforced": True,
                "periods": [{"days": "sat", "begin": "10:00", "end": "11:00"}],
            },
        ]
    )
)
assert _LOADED is not None
SCHEDULES = _LOADED
WS = "sub/rg/ws"


def fresh(default_after: datetime = NOW - TICK) -> ReadState:
    return read_state(None, WS, NOW, default_after)


def test_a_run_claims_the_windows_that_need_work_and_a_second_run_finds_them_held() -> None:
    read = fresh()
    first = open_workspace(read, SCHEDULES, run_id="run-1", at=NOW, dry_run=False)
    assert sorted(first.claimed) == ["office", "strict"]  # a boundary in the window; enforced
    assert first.changed and sorted(first.started) == ["night", "office", "strict"]
    claim = read.state.schedules["office"].claim
    assert claim == Claim("run-1", NOW, NOW + LEASE, NOW)
    stored = read_state(read.state.to_json(), WS, NOW, NOW - TICK)
    second = open_workspace(stored, SCHEDULES, run_id="run-2", at=NOW + timedelta(seconds=3), dry_run=False)
    assert second.claimed == [] and second.busy == {"office": "run-1", "strict": "run-1"}
    again = open_workspace(stored, SCHEDULES, run_id="run-1", at=NOW, dry_run=False)
    assert sorted(again.claimed) == ["office", "strict"]  # the same run opening again keeps its own claims


def test_a_dead_runs_claim_expires_and_the_next_run_takes_over_the_same_window() -> None:
    read = fresh()
    open_workspace(read, SCHEDULES, run_id="dead", at=NOW, dry_run=False)
    later = NOW + LEASE + timedelta(seconds=1)
    taken = open_workspace(read, SCHEDULES, run_id="next", at=later, dry_run=False)
    assert "office" in taken.claimed
    office = read.state.schedules["office"]
    assert office.done_through == NOW - TICK  # the window still starts before the boundary
    assert office.claim is not None and office.claim.through == later


def test_a_release_moves_progress_only_past_a_window_acted_on_in_full() -> None:
    read = fresh()
    open_workspace(read, SCHEDULES, run_id="run-1", at=NOW, dry_run=False)
    claims = {"office": NOW.isoformat(), "strict": NOW.isoformat()}
    assert release(read.state, claims, "run-1", {"office": None, "strict": "listing failed: ARM answered 503"})
    office, strict = read.state.schedules["office"], read.state.schedules["strict"]
    assert (office.done_through, office.claim, office.failures) == (NOW, None, 0)
    assert (strict.done_through, strict.claim, strict.failures) == (NOW - TICK, None, 1)
    assert strict.last_error == "listing failed: ARM answered 503"
    # The next run acts on the failed window again (and on nothing already done).
    retry = open_workspace(read, SCHEDULES, run_id="run-2", at=NOW + TICK, dry_run=False)
    assert retry.claimed == ["strict"]


def test_a_claim_another_run_took_over_is_neither_released_nor_renewed() -> None:
    state = WorkspaceState(WS, {"office": Progress(NOW - TICK, Claim("other", NOW, NOW + LEASE, NOW))})
    assert not release(state, {"office": NOW.isoformat()}, "run-1", {"office": None})
    assert renew(state, {"office": NOW.isoformat()}, "run-1", NOW) == (False, {"office": "other"})


def test_leases_are_renewed_when_half_used() -> None:
    state = WorkspaceState(WS, {"office": Progress(NOW - TICK, Claim("run-1", NOW, NOW + LEASE, NOW))})
    assert renew(state, {"office": ""}, "run-1", NOW + LEASE / 4) == (False, {})
    assert renew(state, {"office": ""}, "run-1", NOW + LEASE * 3 / 4) == (True, {})
    claim = state.schedules["office"].claim
    assert claim is not None and claim.lease_until == NOW + LEASE * 3 / 4 + LEASE


def test_a_dry_run_claims_nothing_and_an_idle_schedule_moves_on() -> None:
    read = fresh()
    assert open_workspace(read, SCHEDULES, run_id="dry", at=NOW, dry_run=True).claimed == []
    read.state.schedules["night"] = Progress(NOW - timedelta(hours=13))
    quiet_hour = NOW + timedelta(hours=2)  # no boundary of "night" between 08:00 and 10:00
    open_workspace(read, SCHEDULES, run_id="run", at=quiet_hour, dry_run=False)
    assert read.state.schedules["night"].done_through == quiet_hour


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not JSON"),
        (b'["a list"]', "expected an object with 'schedules'"),
        (b'{"version": 2, "schedules": {}}', "version 2"),
        (b'{"version": 1, "schedules": {"office": {"done_through": "2026-11-30T06:00:00"}}}', "has no UTC offset"),
        (b'{"version": 1, "schedules": {"office": {"done_through": "9999-12-31T00:00:00+00:00"}}}', "out of range"),
        (b'{"version": 1, "schedules": {"office": {"done_through": "2026-10-01T00:00:00+00:00"}}}', "out of range"),
        (b'{"version": 1, "schedules": {"office": {"done_through": 5}}}', "not an ISO 8601 time"),
        (
            b'{"version": 1, "schedules": {"office": {"done_through": "2026-11-30T07:00:00Z", "claim": {"run": 1}}}}',
            "not a claim",
        ),
    ],
    ids=["not-json", "wrong-shape", "version", "naive", "year-9999", "too-old", "number", "claim"],
)
def test_a_damaged_state_is_repaired_to_a_bounded_catch_up_and_named(raw: bytes, words: str) -> None:
    read = read_state(raw, WS, NOW, NOW - TICK)
    assert read.repaired and words in read.errors[0]
    opening = open_workspace(read, SCHEDULES, run_id="run", at=NOW, dry_run=False)
    assert opening.changed  # written back repaired
    office = read.state.schedules["office"]
    assert office.done_through == NOW - REPAIR_CATCH_UP
    assert "office" in opening.claimed  # the 08:00 boundary is inside the hour caught up


def test_one_damaged_entry_leaves_the_others_as_they_were() -> None:
    raw = json.dumps(
        {
            "version": 1,
            "schedules": {
                "office": {"done_through": "2026-11-30T07:00:00"},
                "night": {"done_through": "2026-11-30T06:59:00+00:00", "failures": 2, "last_error": "x"},
            },
        }
    ).encode()
    read = read_state(raw, WS, NOW, NOW - TICK)
    assert len(read.errors) == 1 and "schedules['office'].done_through" in read.errors[0]
    assert read.state.schedules["night"] == Progress(datetime(2026, 11, 30, 6, 59, tzinfo=UTC), None, 2, "x")


def test_the_old_single_window_is_the_default_start_when_sound() -> None:
    assert legacy_default(None, NOW) == (NOW - TICK, None)
    then = NOW - timedelta(minutes=30)
    assert legacy_default(json.dumps({"last_evaluated": then.isoformat()}).encode(), NOW) == (then, None)
    start, error = legacy_default(b'{"last_evaluated": "9999-01-01T00:00:00+00:00"}', NOW)
    assert start == NOW - REPAIR_CATCH_UP and error is not None and "out of range" in error


def test_one_verdict_per_schedule_and_window_whatever_the_number_of_instances() -> None:
    from shared.compute.arm import ComputeInstance

    decider = Decider(SCHEDULES, None, "compute-schedule")
    instances = [
        ComputeInstance(
            WS, f"ci-{i}", "Stopped" if i % 2 else "Running", {"compute-schedule": ["office", "night"][i % 2]}
        )
        for i in range(2000)
    ]
    for instance in instances:
        decider.decide(instance.tags["compute-schedule"], instance.state, NOW - TICK, NOW)
    assert len(decider._verdicts) == 2
    planned = plan(
        instances, schedules=SCHEDULES, config_error=None, tag="compute-schedule", at=NOW, last_evaluated=NOW - TICK
    )
    starts = [p for p in planned if p.decision.action == "start"]
    assert len(starts) == 0  # the office's Running ones need nothing; its Stopped ones follow "night"
    assert sum(1 for p in planned if "start boundary" in p.decision.reason) == 1000


def test_an_unknown_schedule_tag_names_the_tag_and_the_policy() -> None:
    note = unknown_schedule_note("compute-schedule", "offfice", SCHEDULES, "nightly")
    assert (
        note == "tag compute-schedule=offfice names no schedule (known: night, office, strict); nightly policy applies"
    )
    skip = unknown_schedule_note("compute-schedule", "offfice", {}, "skip")
    assert skip.endswith("(known: none defined); left alone (UNKNOWN_SCHEDULE_POLICY=skip)")


# --- the heads-up: stop boundaries claimed ahead (issue 23) ------------------------------------------------------

EVENING = datetime(2026, 11, 30, 17, 40, 10, tzinfo=UTC)  # Monday 18:40:10 in Berlin: the office closes at 19:00


def test_a_stop_boundary_within_the_notice_is_claimed_ahead_through_the_boundary() -> None:
    read = read_state(None, WS, EVENING, EVENING - TICK)
    opening = open_workspace(read, SCHEDULES, run_id="run-1", at=EVENING, dry_run=False, notice=timedelta(minutes=30))
    assert "office" in opening.claimed
    claim = read.state.schedules["office"].claim
    assert claim is not None and claim.through == datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # 19:00 in Berlin
    # Without a heads-up (or with one too short) nothing is claimed before the boundary.
    for notice in (timedelta(0), timedelta(minutes=10)):
        later = read_state(None, WS, EVENING, EVENING - TICK)
        assert (
            "office"
            not in open_workspace(later, SCHEDULES, run_id="r", at=EVENING, dry_run=False, notice=notice).claimed
        )


def test_runs_during_the_heads_up_find_the_boundary_held_and_after_it_nothing_is_claimed_twice() -> None:
    read = read_state(None, WS, EVENING, EVENING - TICK)
    open_workspace(read, SCHEDULES, run_id="run-1", at=EVENING, dry_run=False, notice=timedelta(minutes=30))
    minute = EVENING + timedelta(minutes=1)
    during = open_workspace(read, SCHEDULES, run_id="run-2", at=minute, dry_run=False, notice=timedelta(minutes=30))
    assert during.busy["office"] == "run-1" and "office" not in during.claimed
    boundary = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    release(read.state, {"office": ""}, "run-1", {"office": None})  # run-1 stopped everything at the boundary
    assert read.state.schedules["office"].done_through == boundary
    after = open_workspace(
        read, SCHEDULES, run_id="run-3", at=boundary + TICK, dry_run=False, notice=timedelta(minutes=30)
    )
    assert "office" not in after.claimed  # the boundary was acted on: never again


def test_a_window_with_a_transition_of_its_own_is_acted_on_now_and_the_next_stop_claimed_later() -> None:
    """A period shorter than the heads-up: its start is acted on at once (starts never wait), its stop is claimed
    by a later run; one window never holds both (its verdict would be the stop alone, and the start lost)."""
    assert stop_ahead(SCHEDULES["office"], NOW - TICK, NOW, timedelta(hours=12)) is None  # the start just passed
    assert stop_ahead(SCHEDULES["office"], NOW, NOW + TICK, timedelta(hours=12)) == datetime(
        2026, 11, 30, 18, tzinfo=UTC
    )
    morning = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)  # 07:30: the next transition is the start, not a stop
    assert stop_ahead(SCHEDULES["office"], morning - TICK, morning, timedelta(hours=12)) is None


def test_a_claim_taken_over_from_a_dead_run_names_it() -> None:
    read = fresh()
    open_workspace(read, SCHEDULES, run_id="dead", at=NOW, dry_run=False)
    later = NOW + LEASE + timedelta(seconds=1)
    open_workspace(read, SCHEDULES, run_id="next", at=later, dry_run=False)
    claim = read.state.schedules["office"].claim
    assert claim is not None and claim.taken_from == "dead"
    assert read_state(read.state.to_json(), WS, later, NOW).state.schedules["office"].claim == claim  # stored


def test_a_lease_is_held_over_a_wait() -> None:
    state = WorkspaceState(WS, {"office": Progress(NOW - TICK, Claim("run-1", NOW, NOW + LEASE, NOW))})
    until = NOW + timedelta(minutes=40)
    assert renew(state, {"office": ""}, "run-1", NOW, until) == (True, {})
    claim = state.schedules["office"].claim
    assert claim is not None and claim.lease_until == until
    assert renew(state, {"office": ""}, "run-1", NOW + timedelta(minutes=1), until) == (False, {})
