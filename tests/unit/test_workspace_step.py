"""One step of a run in one workspace (shared/compute/workspace_step.py), against a scripted ARM and clock.

The ports are the step's own seam (the activity wires MLClient and the ledger blob to them; the integration tests
run those): here each rule of confirming, re-sending and recovering after a crash is checked in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.arm_budget import FULL_BUCKET_LAG_SECONDS, PACING_MARGIN, pacing_offsets, take_from
from shared.compute.arm import ComputeInstance, StopOutcome
from shared.compute.arm_batch import Post
from shared.compute.ledger import Ledger, LedgerItem, iso
from shared.compute.postponements import DueDecision, NoticeRecord, decide_due
from shared.compute.workspace_step import HOLD, WRITE_BATCH, run_step

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
WS = "sub/rg/ws"


class Crash(Exception):
    """The worker died (after the ledger was saved with the batch marked `sending`)."""


@dataclass
class World:
    """ARM as the step sees it: instances with a state and a last operation; answers scripted per instance."""

    states: dict[str, str]
    now: datetime = START
    posts: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)  # name -> statuses of its next POSTs
    ops: dict[str, dict[str, str]] = field(default_factory=dict)
    listing_fails: bool = False
    lists: int = 0
    crash: str | None = None  # "before" / "after": the next send dies before or after its POSTs reach ARM
    lost: dict[str, str] = field(default_factory=dict)
    saved: bytes = b""
    held_until: datetime | None = None
    record: NoticeRecord = field(default_factory=lambda: NoticeRecord("run-1", WS, "run-1:ws:x"))
    record_reads: int = 0
    observed: list[datetime] = field(default_factory=list)

    # --- the ports ---
    def listing(self) -> tuple[list[ComputeInstance] | None, str | None, dict[str, int]]:
        self.lists += 1
        if self.listing_fails:
            return None, "ARM answered 503", {"reads": 1, "writes": 0}
        instances = [
            ComputeInstance(WS, name, state, last_operation=self.ops.get(name)) for name, state in self.states.items()
        ]
        return instances, None, {"reads": 1, "writes": 0}

    def reserve(self, writes: int, now: datetime) -> float:
        return 200.0

    def send(self, posts: Sequence[Post], offsets: Sequence[float]) -> tuple[list[StopOutcome], dict[str, int]]:
        if self.crash == "before":
            self.crash = None
            raise Crash
        outcomes = []
        for post in posts:
            done = {"stop": ("Stopped", "already_stopped"), "start": ("Running", "already_running")}[post.action]
            if post.state == done[0]:  # shared.compute.arm.begin_stop/start: no request for what is done already
                outcomes.append(StopOutcome(done[1], post.state, f"already {post.state}"))  # type: ignore[arg-type]
                continue
            self.posts.append((post.name, post.action))
            status = (self.answers.get(post.name) or ["accepted"]).pop(0) if self.answers.get(post.name) else "accepted"
            if status == "accepted":
                self.states[post.name] = "Stopping" if post.action == "stop" else "Starting"
                self.ops[post.name] = {
                    "operation_name": post.action.capitalize(),
                    "operation_status": "InProgress",
                    "operation_time": iso(self.now),
                }
                status = "stopping" if post.action == "stop" else "starting"
            outcomes.append(StopOutcome(status, post.state, f"ARM said {status}"))  # type: ignore[arg-type]
        if self.crash == "after":
            self.crash = None
            raise Crash
        return outcomes, {"reads": 0, "writes": len(posts)}

    def save(self, ledger: Ledger) -> None:
        self.saved = ledger.to_json()

    def lost_claims(self, ledger: Ledger, now: datetime, until: datetime | None = None) -> dict[str, str]:
        self.held_until = until or self.held_until
        return self.lost

    def due_stops(self, ledger: Ledger, planned: Mapping[str, datetime], now: datetime) -> DueDecision:
        """The heads-up's record, kept here: the same decision as the blob's (postponements.decide_due)."""
        self.record_reads += 1
        decision, changed = decide_due(self.record, planned, now, announced=True)
        if changed is not None:
            self.record = changed
        return decision

    def observe(self, ledger: Ledger, instances: Sequence[ComputeInstance], now: datetime) -> None:
        self.observed.append(now)

    def choose(self, name: str, *, postponed_until: datetime | None = None, stop_now: bool = False) -> None:
        """The owner's click through the link (what apply_choice writes into the record)."""
        notice = self.record.instances[name]
        until = iso(postponed_until) if postponed_until else None
        chosen = replace(notice, postponed_until=until, postponed_by=notice.owner, stop_now=stop_now)
        self.record = replace(self.record, instances={**self.record.instances, name: chosen})

    # --- the test's hands ---
    def settle(self, name: str, state: str, op_status: str = "Succeeded") -> None:
        self.states[name] = state
        if name in self.ops:
            self.ops[name] = {**self.ops[name], "operation_status": op_status}

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Ports:
    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> datetime:
        return self.world.now

    def __getattr__(self, name: str) -> Any:
        return getattr(self.world, name)


def ledger(*names: str, action: str = "stop", timeout: int = 60, schedule: str | None = None) -> Ledger:
    items = tuple(
        LedgerItem(
            name,
            "Running" if action == "stop" else "Stopped",
            action,
            f"{action} it",
            action,
            schedule=schedule,
            due_at=iso(START),
            last_state="Running" if action == "stop" else "Stopped",
        )
        for name in names
    )
    return Ledger("run-1", "shutdown", WS, iso(START), poll_seconds=5, timeout_seconds=timeout, items=items)


def step(world: World, book: Ledger) -> Any:
    answer = run_step(book, Ports(world))
    return answer


def outcomes(book: Ledger) -> dict[str, tuple[str | None, str | None]]:
    return {i.name: (i.outcome, i.error or i.note) for i in book.items}


def test_sent_then_confirmed_by_one_listing_per_poll() -> None:
    world, book = World({"a": "Running", "b": "Running"}), ledger("a", "b")
    first = step(world, book)
    assert world.posts == [("a", "stop"), ("b", "stop")]
    assert first.wake_at == iso(START + timedelta(seconds=5))
    assert first.progress["done"] == 0 and first.progress["waiting"] == 2
    world.later(5)
    world.settle("a", "Stopped")
    second = step(world, book)  # b is still Stopping
    assert outcomes(book)["a"] == ("stopped", None) and book.items[1].open
    world.later(5)
    world.settle("b", "Stopped")
    last = step(world, book)
    assert last.wake_at is None
    assert {i.outcome for i in book.items} == {"stopped"}
    assert world.posts == [("a", "stop"), ("b", "stop")]  # one POST each
    assert book.arm_requests == {"reads": 2, "writes": 2}
    assert second.arm_requests == {"reads": 1, "writes": 0}
    assert book.items[0].seconds == 5.0


def test_a_409_is_sent_again_once_the_state_is_stable() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    world.answers["a"] = ["in_transition"]
    step(world, book)
    assert book.items[0].status == "in_transition"
    world.later(5)
    step(world, book)  # the listing shows Running (stable): sent again
    assert world.posts == [("a", "stop"), ("a", "stop")]
    world.later(5)
    world.settle("a", "Stopped")
    step(world, book)
    assert outcomes(book)["a"] == ("stopped", "after a 409, re-checked")


def test_a_409_followed_by_a_running_job_is_not_interrupted() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    world.answers["a"] = ["in_transition"]
    step(world, book)
    world.states["a"] = "JobRunning"
    world.later(5)
    step(world, book)
    assert outcomes(book)["a"] == ("skipped", "a job started meanwhile (JobRunning); not interrupted")
    assert len(world.posts) == 1


def test_throttled_every_time_fails_after_the_attempts_and_marks_the_outage() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    world.answers["a"] = ["retryable", "retryable", "retryable"]
    while (answer := step(world, book)).wake_at is not None:
        world.now = datetime.fromisoformat(answer.wake_at)
    item = book.items[0]
    assert (item.outcome, item.arm_outage, item.requests) == ("failed", True, 3)
    assert item.error is not None and item.error.startswith(
        "stop request failed after 3 attempt(s): ARM said retryable"
    )


def test_a_stop_that_never_ends_times_out_with_the_last_state_seen() -> None:
    world, book = World({"a": "Running"}), ledger("a", timeout=12)
    while (answer := step(world, book)).wake_at is not None:
        world.now = datetime.fromisoformat(answer.wake_at)
    assert outcomes(book)["a"] == ("timed_out", "not Stopped within 12 s (last seen Stopping)")
    assert book.items[0].seconds >= 12
    assert world.lists <= 4  # one listing per poll, not per instance


def test_a_failed_operation_fails_the_instance() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    step(world, book)
    world.later(5)
    world.settle("a", "Running", op_status="Failed")
    step(world, book)
    assert outcomes(book)["a"] == ("failed", "the stop operation failed in Azure ML; the instance is Running")


@pytest.mark.parametrize("crash", ["after", "before"])
def test_a_step_that_died_mid_send_never_sends_a_request_twice(crash: str) -> None:
    """The ledger is saved with the batch `sending` before the POSTs; the step is then run again from storage."""
    world, book = World({"a": "Running", "b": "Running"}), ledger("a", "b")
    world.crash = crash
    with pytest.raises(Crash):
        step(world, book)
    stored = Ledger.from_json(world.saved)
    assert {i.status for i in stored.items} == {"sending"}
    world.later(1)
    step(world, stored)  # the retry lists first: arrived POSTs are not sent again, lost ones are
    world.later(5)
    world.settle("a", "Stopped")
    world.settle("b", "Stopped")
    while (answer := step(world, stored)).wake_at is not None:
        world.now = datetime.fromisoformat(answer.wake_at)
    assert sorted(world.posts) == [("a", "stop"), ("b", "stop")]  # exactly one request each
    assert {i.outcome for i in stored.items} == {"stopped"}


def test_items_of_a_schedule_another_run_took_over_are_not_sent() -> None:
    world, book = World({"a": "Running", "b": "Running"}), ledger("a", "b", schedule="Office")
    book.items[1].schedule = "other"
    book.claims = {"office": iso(START), "other": iso(START)}
    world.lost = {"office": "reconcile-20261130T2201"}
    step(world, book)
    assert world.posts == [("b", "stop")]
    assert outcomes(book)["a"] == ("skipped", "not sent: schedule Office was claimed by run reconcile-20261130T2201")


def test_a_batch_per_step_and_no_wait_between_batches() -> None:
    names = [f"ci-{i:04d}" for i in range(WRITE_BATCH * 2 + 50)]
    world, book = World(dict.fromkeys(names, "Running")), ledger(*names)
    sizes = []
    for _ in range(3):
        before = len(world.posts)
        answer = step(world, book)
        sizes.append(len(world.posts) - before)
    assert sizes == [WRITE_BATCH, WRITE_BATCH, 50]
    assert answer.wake_at == iso(START + timedelta(seconds=5))


def test_a_listing_that_fails_is_tried_again_at_the_next_poll() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    step(world, book)
    world.listing_fails = True
    world.later(5)
    answer = step(world, book)
    assert book.items[0].open and answer.wake_at is not None
    world.listing_fails = False
    world.settle("a", "Stopped")
    world.now = datetime.fromisoformat(answer.wake_at)
    step(world, book)
    assert outcomes(book)["a"] == ("stopped", None)


def test_the_shared_bucket_refills_at_arms_rate_and_paces_the_posts() -> None:
    state, balance = take_from(None, 200, 1000.0)  # missing: full; ARM refills once the burst lands there
    assert (balance, state) == (200.0, {"tokens": 0.0, "at": 1000.0 + FULL_BUCKET_LAG_SECONDS})
    state, balance = take_from(state, 200, 1005.0 + FULL_BUCKET_LAG_SECONDS)  # 5 s later: 50 tokens back
    assert balance == 50.0 and state["tokens"] == -150.0
    assert pacing_offsets(3, 200.0) == [0.0, 0.0, 0.0]
    assert pacing_offsets(200, 200.0)[-1] == pytest.approx(PACING_MARGIN / 10)  # a margin is left: ARM refills later
    assert pacing_offsets(3, 1.0 + PACING_MARGIN) == pytest.approx([0.0, 0.1, 0.2])
    assert pacing_offsets(2, -150.0) == pytest.approx([(151 + PACING_MARGIN) / 10, (152 + PACING_MARGIN) / 10])
    # A reservation reading an earlier clock (another process, a retry) neither refills nor moves the time back.
    late, balance = take_from({"tokens": -150.0, "at": 1005.0}, 10, 1004.0)
    assert (late, balance) == ({"tokens": -160.0, "at": 1005.0}, -150.0)
    assert take_from(late, 0, 1006.0)[1] == -150.0  # one second after 1005: 10 tokens back, not 20
    assert take_from({"tokens": "x"}, 1, 0.0)[1] == 200.0  # damaged: starts full
    assert take_from({"tokens": float("nan"), "at": 0.0}, 1, 0.0)[1] == 200.0


@pytest.mark.parametrize(
    ("due_in", "wake_in"), [(timedelta(minutes=20), timedelta(minutes=20)), (timedelta(hours=30), HOLD)]
)
def test_a_run_holding_claims_holds_them_over_its_wait_and_wakes_at_least_every_hold(
    due_in: timedelta, wake_in: timedelta
) -> None:
    """A heads-up's wait (or a postponement of many hours) keeps the claims: their lease is extended over the wait
    (at most HOLD at a time) instead of a step every LEASE/3 to renew them (a day of steps every minute would make
    a history of 1,440 steps)."""
    from shared.compute.reconcile_state import LEASE

    world, book = World({"a": "Running"}), ledger("a", schedule="office")
    book.items[0].due_at = iso(START + due_in)
    book.claims = {"office": iso(START)}
    answer = step(world, book)
    assert world.posts == []
    assert answer.wake_at == iso(START + wake_in)
    assert world.held_until == START + wake_in + LEASE / 2


def test_a_run_holding_claims_renews_them_by_its_steps_when_it_waits_less_than_a_third_of_the_lease() -> None:
    world, book = World({"a": "Running"}), ledger("a", schedule="office")
    book.claims = {"office": iso(START)}
    assert step(world, book).wake_at == iso(START + timedelta(seconds=5))  # the next poll
    assert world.held_until is None


# --- the heads-up (issue 23) ---------------------------------------------------------------------------------------

NOTICE = timedelta(minutes=30)
DUE = START + NOTICE


def announced(*names: str, states: dict[str, str] | None = None) -> tuple[World, Ledger]:
    """A shutdown whose stops are due 30 minutes after its start, each announced to its owner (the record)."""
    from shared.compute.postponements import InstanceNotice

    world, book = World(states or dict.fromkeys(names, "Running")), ledger(*names)
    book.notice_minutes = NOTICE.total_seconds() / 60
    for item in book.items:
        item.due_at = iso(DUE)
    notices = {n: InstanceNotice("ana", iso(DUE), ("hook",), sent_at=iso(START)) for n in names}
    world.record = NoticeRecord("run-1", WS, "run-1:ws:x", notices)
    return world, book


def test_stops_wait_for_their_heads_up_and_a_postponed_one_alone_waits_for_its_new_time() -> None:
    world, book = announced("a", "b")
    first = step(world, book)
    assert world.posts == [] and world.lists == 0  # waiting lists nothing: no ARM request while the heads-up runs
    assert first.wake_at == iso(DUE)
    world.choose("a", postponed_until=DUE + timedelta(hours=1))  # ana keeps `a` an hour longer
    world.now = DUE
    at_due = step(world, book)
    assert world.posts == [("b", "stop")]  # b at its time, a not
    assert world.lists == 1 and at_due.arm_requests == {"reads": 1, "writes": 1}  # one listing for the waited stops
    assert world.record.instances["b"].spent and not world.record.instances["a"].spent  # b's link answers 410 now
    assert at_due.wake_at == iso(DUE + timedelta(seconds=5))  # b's confirmation first
    world.later(5)
    world.settle("b", "Stopped")
    confirmed = step(world, book)
    assert outcomes(book)["b"] == ("stopped", None)
    assert confirmed.wake_at == iso(DUE + timedelta(hours=1))  # then a's new time
    world.now = DUE + timedelta(hours=1)
    step(world, book)
    assert world.posts == [("b", "stop"), ("a", "stop")]
    world.later(5)
    world.settle("a", "Stopped")
    assert step(world, book).wake_at is None
    a = book.items[0]
    assert (a.outcome, a.postponed_until, a.postponed_by) == ("stopped", iso(DUE + timedelta(hours=1)), "ana")
    assert a.notice is not None and a.notice["channels"] == ["hook"] and a.notice["sent_at"] == iso(START)


def test_stop_now_sends_before_the_planned_time() -> None:
    world, book = announced("a", "b")
    step(world, book)
    world.choose("a", stop_now=True)
    world.later(60)  # the click's event wakes the workspace: a step long before DUE
    answer = step(world, book)
    assert world.posts == [("a", "stop")]
    assert answer.wake_at == iso(START + timedelta(seconds=65))  # a's confirmation; b still waits for DUE


def test_a_waited_stop_is_checked_against_one_listing_before_it_is_sent() -> None:
    states = {"gone": "Running", "job": "Running", "done": "Running", "go": "Running"}
    world, book = announced(*states, states=states)
    step(world, book)
    del world.states["gone"]  # deleted during the heads-up
    world.states["job"] = "JobRunning"  # a job started
    world.states["done"] = "Stopped"  # its owner stopped it
    world.now = DUE
    step(world, book)
    assert world.posts == [("go", "stop")] and world.lists == 1  # one listing for all four, no request per instance
    assert outcomes(book) == {
        "gone": ("skipped", "not found (deleted during the heads-up)"),
        "job": ("skipped", "a job started during the heads-up (JobRunning); not interrupted"),
        "done": ("already_stopped", "already Stopped"),
        "go": (None, None),
    }


def test_a_stop_postponed_past_its_schedules_next_start_is_not_made() -> None:
    world, book = announced("a")
    book.items[0].not_after = iso(DUE + timedelta(hours=2))  # the schedule starts again then
    step(world, book)
    world.choose("a", postponed_until=DUE + timedelta(hours=3))
    world.now = DUE
    assert step(world, book).wake_at == iso(DUE + timedelta(hours=2))
    world.now = DUE + timedelta(hours=2)
    assert step(world, book).wake_at is None
    assert world.posts == []
    assert outcomes(book)["a"][0] == "skipped" and "postponed past the schedule's next start" in str(
        outcomes(book)["a"]
    )


def test_a_stop_made_before_its_heads_up_was_recorded_is_marked_so_the_late_heads_up_skips_it() -> None:
    world, book = announced("a")
    world.record = NoticeRecord("run-1", WS, "run-1:ws:x")  # the sender has not written it yet
    world.now = DUE
    step(world, book)
    assert world.posts == [("a", "stop")]
    assert world.record.instances["a"].spent  # shared.compute.notices leaves spent instances out of its messages


def test_without_a_heads_up_no_record_is_read_and_nothing_is_listed_before_sending() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    step(world, book)
    assert (world.posts, world.lists, world.record_reads) == ([("a", "stop")], 0, 0)


def test_every_listing_of_a_step_is_an_observation_of_measured_savings() -> None:
    world, book = World({"a": "Running"}), ledger("a")
    step(world, book)
    world.later(5)
    step(world, book)
    assert world.observed == [START + timedelta(seconds=5)]  # the confirmation's listing, no listing of its own
