"""The notice record against Azurite: owners' choices are stored durably, once, and never lost to a race."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.compute import postponements as pp
from shared.compute.postponements import InstanceNotice
from shared.compute.run_ids import workspace_instance_id, workspace_key_hash

WS = "sub-1/rg-ml/ws-research"
WS12 = workspace_key_hash(WS)
STOP = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
NOW = STOP - timedelta(minutes=20)


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string, "REPORTS_CONTAINER": f"r{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def run(env: dict[str, str]) -> str:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    planned = {
        name: InstanceNotice(owner="alice@contoso.com", stop_at=pp.iso_time(STOP) or "", channels=("team",))
        for name in ("ci-alice", "ci-alice-2")
    }
    pp.record_planned(run_id, WS, planned, env)
    return run_id


def _notice(run: str, env: dict[str, str], name: str = "ci-alice") -> InstanceNotice:
    found = pp.read_record(run, WS12, env)
    assert found is not None
    return found[0].instances[name]


def _etag(run: str, env: dict[str, str]) -> str:
    return blobs.blob_info(env["REPORTS_CONTAINER"], pp.record_blob(run, WS12), env).etag


def test_the_record_names_the_workspace_orchestration_and_the_sender_is_idempotent(run, env) -> None:
    record, _ = pp.read_record(run, WS12, env) or (None, None)
    assert record is not None and record.orchestration == workspace_instance_id(run, WS) == f"{run}:ws:{WS12}"
    pp.apply_choice(run, WS12, "ci-alice", "postpone", 60, NOW, env)
    again = {"ci-alice": InstanceNotice(owner="someone-else", stop_at="2026-01-01T00:00:00Z")}
    pp.record_planned(run, WS, again, env)  # a retried sender
    assert _notice(run, env).owner == "alice@contoso.com"
    assert _notice(run, env).postponed_until == "2026-11-30T23:00:00Z"


def test_postpone_is_counted_from_the_planned_stop_so_the_same_click_twice_changes_nothing(run, env) -> None:
    first = pp.apply_choice(run, WS12, "ci-alice", "postpone", 90, NOW, env)
    assert (first.status, first.changed) == (200, True)
    assert first.notice is not None and first.notice.postponed_until == "2026-11-30T23:30:00Z"
    assert first.notice.postponed_by == "alice@contoso.com"
    second = pp.apply_choice(run, WS12, "ci-alice", "postpone", 90, NOW + timedelta(minutes=3), env)
    assert (second.status, second.changed) == (200, False)
    assert _notice(run, env).postponed_until == "2026-11-30T23:30:00Z"
    assert _notice(run, env, "ci-alice-2").postponed_until is None  # that instance alone


def test_a_postponed_instance_is_due_at_its_new_time_and_the_others_at_theirs(run, env) -> None:
    pp.apply_choice(run, WS12, "ci-alice", "postpone", 60, NOW, env)
    planned = {"ci-alice": STOP, "ci-alice-2": STOP, "ci-unnoticed": STOP}
    at_stop = pp.take_due(run, WS, planned, STOP, env)
    assert set(at_stop.due) == {"ci-alice-2", "ci-unnoticed"}
    assert at_stop.waiting == {"ci-alice": STOP + timedelta(hours=1)}
    assert at_stop.next_due == STOP + timedelta(hours=1)
    assert _notice(run, env, "ci-alice-2").spent and not _notice(run, env).spent
    later = pp.take_due(run, WS, {"ci-alice": STOP}, STOP + timedelta(hours=1), env)
    assert later.due == ("ci-alice",) and _notice(run, env).spent


def test_stop_now_makes_it_due_at_once_and_a_spent_link_changes_nothing(run, env) -> None:
    assert pp.apply_choice(run, WS12, "ci-alice", "stop-now", 0, NOW, env).changed
    decision = pp.take_due(run, WS, {"ci-alice": STOP}, NOW + timedelta(seconds=5), env)
    assert decision.due == ("ci-alice",)
    before = _etag(run, env)
    late = pp.apply_choice(run, WS12, "ci-alice", "postpone", 60, NOW + timedelta(seconds=6), env)
    assert late.status == 410 and "spent" in late.message
    assert _etag(run, env) == before


def test_without_a_record_the_planned_times_hold_and_nothing_is_written(env) -> None:
    decision = pp.take_due("no-such-run", WS, {"a": STOP, "b": STOP + timedelta(minutes=1)}, STOP, env)
    assert decision.due == ("a",) and decision.waiting == {"b": STOP + timedelta(minutes=1)}
    assert blobs.list_names(env["REPORTS_CONTAINER"], "notices/", env) == []
    assert pp.apply_choice("no-such-run", WS12, "a", "stop-now", 0, NOW, env).status == 410


def test_a_time_that_has_passed_is_refused(run, env) -> None:
    result = pp.apply_choice(run, WS12, "ci-alice", "postpone", 10, STOP + timedelta(minutes=15), env)
    assert result.status == 400 and "has passed" in result.message
    assert _notice(run, env).postponed_until is None


def test_posts_are_rate_limited_per_instance(run, env) -> None:
    for i in range(pp.POSTS_PER_WINDOW):
        assert pp.apply_choice(run, WS12, "ci-alice", "postpone", 30 + i, NOW + timedelta(seconds=i), env).status == 200
    before = _etag(run, env)
    limited = pp.apply_choice(run, WS12, "ci-alice", "postpone", 120, NOW + timedelta(seconds=30), env)
    assert limited.status == 429 and limited.retry_after is not None and 0 < limited.retry_after <= 600
    assert _etag(run, env) == before  # refused posts write nothing
    assert pp.apply_choice(run, WS12, "ci-alice-2", "stop-now", 0, NOW + timedelta(seconds=31), env).status == 200
    after_window = NOW + pp.POST_WINDOW + timedelta(seconds=1)
    assert pp.apply_choice(run, WS12, "ci-alice", "postpone", 120, after_window, env).status == 200


def test_a_write_that_loses_a_race_is_decided_again_on_what_won(run, env, monkeypatch) -> None:
    """The step reads, a click writes in between, the step's conditional write fails: it re-reads and sees the
    postponement (never stops an instance whose owner just kept it)."""
    calls = {"n": 0}
    original = pp.read_record

    def read_then_click(run_id: str, ws12: str, env_: Mapping[str, str] | None = None) -> Any:
        found = original(run_id, ws12, env_)
        calls["n"] += 1
        if calls["n"] == 2:  # right after take_due's own read: the owner clicks (a real write to Azurite)
            pp.apply_choice(run, WS12, "ci-alice", "postpone", 60, NOW, env)
        return found

    monkeypatch.setattr(pp, "read_record", read_then_click)
    decision = pp.take_due(run, WS, {"ci-alice": STOP, "ci-alice-2": STOP}, STOP, env)
    monkeypatch.undo()
    assert decision.due == ("ci-alice-2",)
    assert "ci-alice" in decision.waiting
    assert not _notice(run, env).spent and _notice(run, env).postponed_until == "2026-11-30T23:00:00Z"


def test_concurrent_clicks_on_every_instance_are_all_kept(env) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    names = [f"ci-{i:02d}" for i in range(12)]
    pp.record_planned(run, WS, {n: InstanceNotice(owner=None, stop_at=pp.iso_time(STOP) or "") for n in names}, env)
    threads = [
        threading.Thread(target=pp.apply_choice, args=(run, WS12, n, "postpone", 10 + i, NOW, env))
        for i, n in enumerate(names)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, name in enumerate(names):
        assert _notice(run, env, name).postponed_until == pp.iso_time(STOP + timedelta(minutes=10 + i))
        assert _notice(run, env, name).postponed_by == "the link's holder"


def test_report_entries_and_spent_at_the_end(run, env) -> None:
    pp.record_sent(run, WS, {"ci-alice": (("team",), "2026-11-30T21:30:01Z", None)}, env)
    pp.apply_choice(run, WS12, "ci-alice", "postpone", 30, NOW, env)
    pp.mark_spent(run, WS, ["ci-alice", "ci-alice-2"], env)
    entries = pp.report_entries(run, WS, env)
    assert entries["ci-alice"] == {
        "sent_at": "2026-11-30T21:30:01Z",
        "channels": ["team"],
        "postponed_until": "2026-11-30T22:30:00Z",
        "postponed_by": "alice@contoso.com",
        "error": None,
    }
    assert all(_notice(run, env, n).spent for n in ("ci-alice", "ci-alice-2"))
    assert pp.report_entries("other-run", WS, env) == {}


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"action": "postpone", "minutes": "60"}, ("postpone", 60)),
        ({"action": "postpone", "minutes": "720"}, ("postpone", 720)),
        ({"action": "stop-now"}, ("stop-now", 0)),
        ({"action": "stop-now", "minutes": "junk"}, ("stop-now", 0)),
    ],
)
def test_choices_within_the_rules(form, expected) -> None:
    assert pp.parse_choice(form, 12.0) == expected


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "postpone", "minutes": "0"}, "minutes=0 is outside 1 to 720"),
        ({"action": "postpone", "minutes": "99999"}, "minutes=99999 is outside 1 to 720"),
        ({"action": "postpone", "minutes": "abc"}, "minutes='abc' is not a whole number"),
        ({"action": "postpone", "minutes": "1.5"}, "not a whole number"),
        ({"action": "postpone", "minutes": "-5"}, "not a whole number"),
        ({"action": "postpone", "minutes": "9" * 40}, "not a whole number"),
        ({"action": "postpone"}, "minutes='' is not a whole number"),
        ({"action": "delete"}, "action='delete' is not a choice here"),
        ({}, "action='' is not a choice here"),
    ],
)
def test_choices_outside_the_rules_are_named(form, message) -> None:
    with pytest.raises(ValueError) as err:
        pp.parse_choice(form, 12.0)
    assert message in str(err.value)


def test_an_instance_notice_round_trips(run, env) -> None:
    notice = replace(_notice(run, env), posts=("2026-11-30T21:40:00Z",), stop_now=True)
    assert InstanceNotice.from_dict(notice.to_dict()) == notice


def test_pending_stops_show_countdowns_and_choices_until_the_record_is_dropped(run, env) -> None:
    pp.apply_choice(run, WS12, "ci-alice", "postpone", 45, NOW, env)
    pending = {p.instance: p for p in pp.pending_stops(NOW, env) if p.run == run}
    assert pending["ci-alice"].due_at == "2026-11-30T22:45:00Z" and pending["ci-alice"].postponed_by
    assert pending["ci-alice-2"].due_at == "2026-11-30T22:00:00Z" and pending["ci-alice-2"].postponed_until is None
    pp.take_due(run, WS, {"ci-alice-2": STOP}, STOP, env)
    assert [p.instance for p in pp.pending_stops(STOP, env) if p.run == run] == ["ci-alice"]
    pp.delete_record(run, WS, env)
    assert [p for p in pp.pending_stops(STOP, env) if p.run == run] == []
    assert pp.apply_choice(run, WS12, "ci-alice", "stop-now", 0, STOP, env).status == 410


def test_a_run_that_takes_over_a_dead_runs_claims_keeps_its_owners_choices(run, env) -> None:
    """The reconciler's takeover after a host was lost mid-wait (devhost keeps orchestrations in memory): the choice
    made through the dead run's link holds in the run that takes over; the dead run's links answer 410."""
    pp.apply_choice(run, WS12, "ci-alice", "postpone", 90, NOW, env)
    chosen = pp.carry_over(run, "next-run", WS, ["ci-alice", "ci-alice-2"], env)
    assert list(chosen) == ["ci-alice"]  # ci-alice-2 had no choice: the new run announces it afresh
    assert chosen["ci-alice"].due_at() == STOP + timedelta(minutes=90)
    assert chosen["ci-alice"].channels == () and chosen["ci-alice"].sent_at is None  # announced again, new links
    assert pp.read_record(run, WS12, env) is None  # the dead run's links: 410
    assert pp.carry_over(run, "next-run", WS, ["ci-alice"], env) == chosen  # a repeated plan: the same answer
    decision = pp.take_due("next-run", WS, {"ci-alice": STOP}, STOP + timedelta(minutes=5), env)
    assert decision.due == () and decision.waiting["ci-alice"] == STOP + timedelta(minutes=90)
