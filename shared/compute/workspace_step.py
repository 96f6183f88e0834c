"""One step of a run in one workspace: confirm what was sent, send what is due, say when to come back.

`run_step(ledger, ports)` advances the ledger (shared/compute/ledger.py) and returns a compact answer: counts and
`wake_at`, the next instant the workspace needs a step (the next poll, the next due item, a deadline), or None
when every item has its outcome. The orchestration waits on a durable timer until then and calls it again.

The rules of the previous per-run monitor, per item:
- a POST answered 202 is confirmed by listing the workspace (one request per page, never a GET per instance);
  transitional states wait, the target state ends it, a failed operation (in ARM's `lastOperation`) fails it;
- a 409 (in transition) is sent again once the listing shows a stable state, `MAX_REQUESTS` in all; a stop that
  met a 409 and then finds a job running (JobRunning) is skipped, not interrupted;
- a 429/5xx that outlived the SDK's retries (`retryable`) is sent again one poll later, `attempts` in all;
- an item not at its target `timeout_seconds` after its first POST ends `timed_out` (or `failed` if ARM never
  took the request).
An item found `sending` (its POST may have gone out before a crash) is sent again only if the listing shows its
state unchanged and no `lastOperation` of that action since it was sent: never twice for one request.

With the heads-up (issue 23; the ledger's `notice_minutes` > 0), a stop waits for its due time as the owner chose it
through the link (shared.compute.postponements.take_due: postponed, or stop-now); a stop that waited is checked
against a listing before it is sent (deleted, stopped by someone, a job started: not sent), one listing per step
for all of them, no request per instance. Every listing the step makes also closes the measured-savings intervals
of instances seen running again (shared.compute.measured.observe).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.arm_budget import pacing_offsets
from shared.compute.arm import TRANSITIONAL_STATES, ComputeInstance, StopOutcome
from shared.compute.arm_batch import Post
from shared.compute.ledger import AWAITING, DONE_OUTCOME, TARGET, Ledger, LedgerItem, iso, parse_time
from shared.compute.postponements import DueDecision
from shared.compute.reconcile_state import LEASE
from shared.payloads import Payload

log = logging.getLogger(__name__)

MAX_REQUESTS = 3  # a stop/start re-sent after a 409 (in transition) at most this many times in all
WRITE_BATCH = 200  # POSTs per step: ARM's write burst per subscription
MAX_ERROR_CHARS = 500
CLOCK_SKEW = timedelta(seconds=5)  # ARM's clock against ours when comparing its operation times with sent_at
# A run holding reconcile claims that waits (a heads-up, a postponement) wakes at least this often, its claims' lease
# extended over the wait: a day's postponement is 24 steps of history, and a run that died with the host leaves its
# claims to another run within this (plus LEASE/2).
HOLD = timedelta(hours=1)


def brief(err: BaseException | str) -> str:
    """A message on one bounded line: hosts may append a stack trace, and errors end up in reports and statuses."""
    text = " ".join(str(err).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class StepPorts(Protocol):
    """What a step needs from the world (the activity wires ARM, the blobs and the clock; tests their own)."""

    def now(self) -> datetime: ...

    def listing(self) -> tuple[list[ComputeInstance] | None, str | None, dict[str, int]]:
        """(instances, None, requests) or (None, error, requests)."""

    def reserve(self, writes: int, now: datetime) -> float:
        """Take `writes` tokens of the subscription's write bucket; the balance before (may be negative)."""

    def send(self, posts: Sequence[Post], offsets: Sequence[float]) -> tuple[list[StopOutcome], dict[str, int]]: ...

    def save(self, ledger: Ledger) -> None:
        """Write the ledger if nobody else did since it was read (raises otherwise)."""

    def lost_claims(self, ledger: Ledger, now: datetime, until: datetime | None = None) -> dict[str, str]:
        """Reconcile: schedules whose claim another run took over (schedule -> run); renews this run's lease (at
        least until `until` when given)."""

    def due_stops(self, ledger: Ledger, planned: Mapping[str, datetime], now: datetime) -> DueDecision:
        """The heads-up's record: which of the planned stops (name -> planned time) are due now (marked spent),
        when the others are, and each one's notice."""

    def observe(self, ledger: Ledger, instances: Sequence[ComputeInstance], now: datetime) -> None:
        """Measured savings: a listing the step made closes the intervals of instances seen running again."""


@dataclass(frozen=True)
class StepAnswer(Payload):
    """What the orchestration keeps of a step: counts for its custom status and when to step again."""

    progress: dict[str, Any] = field(default_factory=dict)
    wake_at: str | None = None
    arm_requests: dict[str, int] = field(default_factory=dict)


@dataclass
class _Step:
    ledger: Ledger
    ports: StepPorts
    now: datetime
    requests: dict[str, int] = field(default_factory=lambda: {"reads": 0, "writes": 0})
    sent_from: str | None = None  # `sent_at` of the batch this step sent
    sent_until: datetime | None = None  # when its last POST was answered
    listed: list[ComputeInstance] | None = None  # this step's listing (one at most)
    tried_listing: bool = False
    # The heads-up's decision (stops the record knows): due now, and when the others are
    decided: frozenset[str] = frozenset()
    due_now: frozenset[str] = frozenset()
    waiting: dict[str, datetime] = field(default_factory=dict)

    @property
    def poll(self) -> timedelta:
        return timedelta(seconds=self.ledger.poll_seconds)

    def count(self, requests: dict[str, int]) -> None:
        for kind in ("reads", "writes"):
            self.requests[kind] += int(requests.get(kind, 0))
        self.ledger.count(int(requests.get("reads", 0)), int(requests.get("writes", 0)))

    # --- claims (reconcile) -------------------------------------------------------------------------------------
    def hold_claims(self, wake: datetime) -> datetime:
        """When to wake so that the claims stay this run's: a short wait within the lease (renewed by every step),
        a longer one (a heads-up, a postponement) with the lease extended over it, at most HOLD at a time."""
        if wake <= self.now + LEASE / 3:
            return wake
        wake = min(wake, self.now + HOLD)
        self.ports.lost_claims(self.ledger, self.now, wake + LEASE / 2)  # a claim lost now is dropped next step
        return wake

    def drop_lost_claims(self) -> None:
        lost = self.ports.lost_claims(self.ledger, self.now)
        for item in self.ledger.open_items():
            run = lost.get((item.schedule or "").lower())
            if run is not None and item.status in ("planned", "retryable"):
                item.end("skipped", self.now, note=f"not sent: schedule {item.schedule} was claimed by run {run}")

    # --- confirmation by listing ---------------------------------------------------------------------------------
    def needs_listing(self) -> bool:
        awaiting = [item for item in self.ledger.items if item.status in AWAITING]
        if any(item.status == "sending" for item in awaiting):
            return True
        due = parse_time(self.ledger.last_listed_at)
        overdue = any(self.deadline(item) <= self.now for item in awaiting)
        return bool(awaiting) and (overdue or due is None or self.now >= due + self.poll)

    def deadline(self, item: LedgerItem) -> datetime:
        first = parse_time(item.first_sent_at) or self.now
        return first + timedelta(seconds=self.ledger.timeout_seconds)

    def listing(self) -> list[ComputeInstance] | None:
        """The workspace's instances, listed once per step (None: the listing failed; the caller decides)."""
        if not self.tried_listing:
            self.tried_listing = True
            instances, _, requests = self.ports.listing()
            self.count(requests)
            if instances is not None:
                self.listed = instances
                self.ledger.last_listed_at = iso(self.now)
                self.ports.observe(self.ledger, instances, self.now)
        return self.listed

    def confirm(self) -> None:
        instances = self.listing()
        if instances is None:
            return  # not listed this time (the error is transient or not, the deadline decides): look again later
        listed = {i.name.lower(): i for i in instances}
        for item in self.ledger.items:
            if item.status == "sending":
                self.recover(item, listed.get(item.name.lower()))
            if item.status in ("sent", "in_transition"):
                self.judge(item, listed.get(item.name.lower()))

    def recover(self, item: LedgerItem, instance: ComputeInstance | None) -> None:
        """An item marked `sending` by a step that did not finish: did its POST reach ARM?"""
        if instance is None:
            item.status = "sent"  # judged below: no longer listed
            return
        sent = parse_time(item.sent_at) or self.now
        op = instance.last_operation or {}
        op_time = _time_or_none(op.get("operation_time"))
        recent = op_time is not None and op_time >= sent - CLOCK_SKEW
        ours = op.get("operation_name") == item.action.capitalize() and recent
        moved = instance.state != (item.last_state or item.state_before) or instance.state in TRANSITIONAL_STATES
        if ours or moved:
            item.status, item.answer = "sent", item.answer or "accepted"
        else:
            item.status, item.requests = "planned", max(0, item.requests - 1)  # it never arrived: send it again

    def judge(self, item: LedgerItem, instance: ComputeInstance | None) -> None:
        action = item.action
        if instance is None:
            doing = "stopping" if action == "stop" else "starting"
            item.end("skipped", self.now, note=f"not found (deleted while {doing})")
            return
        state = instance.state
        item.last_state = state
        if state in TRANSITIONAL_STATES:
            return
        op = instance.last_operation or {}
        first = parse_time(item.first_sent_at) or self.now
        op_time = _time_or_none(op.get("operation_time"))
        ours = op_time is None or op_time >= first - CLOCK_SKEW
        if state == TARGET[action]:
            item.end(DONE_OUTCOME[action], self.now, note="after a 409, re-checked" if item.requests > 1 else None)
        elif op.get("operation_name") == action.capitalize() and op.get("operation_status") == "Failed" and ours:
            item.end("failed", self.now, error=f"the {action} operation failed in Azure ML; the instance is {state}")
        elif action == "stop" and state == "JobRunning" and item.answer == "in_transition":
            item.end("skipped", self.now, note="a job started meanwhile (JobRunning); not interrupted")
        elif item.answer == "in_transition":
            if item.requests >= MAX_REQUESTS:
                error = f"still {state} after {item.requests} {action} requests answered 409"
                item.end("failed", self.now, error=error)
            else:
                item.status = "planned"  # stable again: send it once more
        # else: accepted, and ARM may show the old state for a moment after the 202: look again on the next poll

    def expire(self) -> None:
        for item in self.ledger.items:
            if item.open and item.requests > 0 and item.status != "planned" and self.deadline(item) <= self.now:
                if item.status == "retryable":
                    item.end("failed", self.now, error=f"{item.action} request failed: {brief(item.message)}")
                    item.arm_outage = True
                else:
                    target, seen = TARGET[item.action], item.last_state
                    error = f"not {target} within {self.ledger.timeout_seconds} s (last seen {seen})"
                    item.end("timed_out", self.now, error=error)

    # --- the heads-up --------------------------------------------------------------------------------------------
    def merge_notices(self) -> None:
        """The owners' choices: which waiting stops are due now (they are spent in the record), when the others are;
        each item keeps its notice for the report. A stop still waiting at its schedule's next start is not made."""
        from shared.compute.postponements import RecordError

        waiting = [i for i in self.ledger.items if i.action == "stop" and i.status == "planned"]
        planned = {item.name: parse_time(item.due_at) or self.now for item in waiting}
        if not planned:
            return
        try:
            decision = self.ports.due_stops(self.ledger, planned, self.now)
        except RecordError as err:  # a damaged record cannot hold a stop back: the planned times stand
            log.error(
                "heads-up of %s in run %s unreadable, stops at their planned times: %s",
                self.ledger.workspace,
                self.ledger.run_id,
                err,
            )
            return
        self.decided, self.due_now = frozenset(planned), frozenset(decision.due)
        self.waiting = dict(decision.waiting)
        for item in waiting:
            notice = decision.notices.get(item.name)
            if notice is not None:
                item.notice = notice.report_entry()
                item.postponed_until, item.postponed_by = notice.postponed_until, notice.postponed_by
            restart = parse_time(item.not_after)
            if item.name in self.waiting and restart is not None and restart <= self.now:
                note = f"not stopped: postponed past the schedule's next start ({iso(restart)}); left running"
                item.end("skipped", self.now, note=note)

    def refresh(self, batch: list[LedgerItem]) -> None:
        """Stops that waited for their heads-up are checked against a listing (one for all) before they are sent:
        one deleted, stopped by someone, or running a job meanwhile is not stopped by us."""
        at = parse_time(self.ledger.at) or self.now
        waited = [i for i in batch if i.action == "stop" and (parse_time(i.due_at) or at) > at]
        if not waited or self.listing() is None:
            return  # nothing waited, or no listing now: ARM's answer to the POST settles it as without a heads-up
        listed = {i.name.lower(): i for i in self.listed or []}
        for item in waited:
            instance = listed.get(item.name.lower())
            if instance is None:
                item.end("skipped", self.now, note="not found (deleted during the heads-up)")
            elif instance.state == "JobRunning":
                item.end("skipped", self.now, note="a job started during the heads-up (JobRunning); not interrupted")
            else:
                item.last_state = instance.state  # Stopped or Stopping: no POST (shared.compute.arm.begin_stop)

    # --- sending ------------------------------------------------------------------------------------------------
    def due(self) -> list[LedgerItem]:
        out = []
        for item in self.ledger.items:
            if item.status == "planned" and item.name in self.decided:
                due = item.name in self.due_now
            else:
                due = item.status == "planned" and (parse_time(item.due_at) or self.now) <= self.now
            retry = item.status == "retryable" and (parse_time(item.sent_at) or self.now) + self.poll <= self.now
            if due or retry:
                out.append(item)
        return out[:WRITE_BATCH]

    def send(self, batch: list[LedgerItem]) -> None:
        """Mark the batch `sending` in storage, send it at the bucket's pace, keep the answers."""
        batch_start = self.now
        for item in batch:
            item.status, item.sent_at = "sending", iso(batch_start)
            item.first_sent_at = item.first_sent_at or item.sent_at
            item.requests += 1
        self.ports.save(self.ledger)
        # Reserved right before the first POST goes out: the bucket's refill counts from the instant its tokens are
        # really spent (an earlier instant would credit refill that ARM's full bucket never gave).
        offsets = pacing_offsets(len(batch), self.ports.reserve(len(batch), self.ports.now()))
        posts = [Post(item.name, item.action, item.last_state or item.state_before) for item in batch]
        outcomes, requests = self.ports.send(posts, offsets)
        self.count(requests)
        self.now = max(self.now, self.ports.now())
        self.sent_from, self.sent_until = iso(batch_start), self.now
        for item, outcome in zip(batch, outcomes, strict=True):
            self.settle(item, outcome)

    def settle(self, item: LedgerItem, outcome: StopOutcome) -> None:
        """ARM's answer to one POST: end the item when the answer is final."""
        item.status = "sent"
        item.answer, item.message = str(outcome.status), str(outcome.message or "")
        if outcome.state_before:
            item.last_state = str(outcome.state_before)
        status = item.answer
        if status == "already_stopped":
            item.end("already_stopped", self.now, note=item.message)
        elif status == "already_running":
            item.end("skipped", self.now, note=f"already {item.last_state}")
        elif status == "not_found":
            item.end("skipped", self.now, note="not found (deleted meanwhile?)")
        elif status == "failed":
            item.end("failed", self.now, error=brief(item.message) or f"ARM refused the {item.action}")
        elif status == "retryable":
            if item.requests >= self.ledger.attempts:
                error = f"{item.action} request failed after {item.requests} attempt(s): {brief(item.message)}"
                item.end("failed", self.now, error=error)
                item.arm_outage = True
            else:
                item.status = "retryable"
        elif status == "in_transition":
            item.status = "in_transition"

    # --- when to come back ---------------------------------------------------------------------------------------
    def wake_at(self) -> datetime | None:
        times: list[datetime] = []
        listed = parse_time(self.ledger.last_listed_at)
        for item in self.ledger.open_items():
            if item.status == "planned":
                when = self.waiting.get(item.name) or parse_time(item.due_at) or self.now
                restart = parse_time(item.not_after) if item.name in self.waiting else None
                times.append(max(self.now, min(when, restart) if restart is not None else when))
            elif item.status == "retryable":
                times.append((parse_time(item.sent_at) or self.now) + self.poll)
            else:
                sent = parse_time(item.sent_at) or self.now
                if self.sent_until is not None and item.sent_at == self.sent_from:
                    sent = self.sent_until  # sent by this step: give ARM a poll from the last POST, not the first
                times.append(max(sent, listed or sent) + self.poll)
                times.append(self.deadline(item))
        return min(times) if times else None


def run_step(ledger: Ledger, ports: StepPorts) -> StepAnswer:
    """Advance `ledger` by one step (see the module's docstring); saved through `ports` before it returns."""
    step = _Step(ledger, ports, ports.now())
    ledger.steps += 1
    opened = [item for item in ledger.items if item.open]
    if ledger.claims and not ledger.dry_run:
        step.drop_lost_claims()
    if step.needs_listing():
        step.confirm()
    step.expire()
    if ledger.notice_minutes > 0 and not ledger.dry_run:
        step.merge_notices()
    batch = step.due()
    if batch and not ledger.dry_run:
        step.refresh(batch)
        batch = [item for item in batch if item.open]
    if batch and not ledger.dry_run:
        step.send(batch)
    wake = step.wake_at()
    if wake is not None and ledger.claims and not ledger.dry_run:
        wake = step.hold_claims(wake)
    ports.save(ledger)
    for item in opened:
        if not item.open:
            detail = item.error or item.note or ""
            log.info(
                "%s of %s in %s: %s after %.1f s %s",
                item.action,
                item.name,
                ledger.workspace,
                item.outcome,
                item.seconds,
                detail,
            )
    return StepAnswer(ledger.progress(), None if wake is None else iso(wake), step.requests)


def _time_or_none(text: Any) -> datetime | None:
    try:
        return parse_time(str(text)) if text else None
    except ValueError:
        return None


class _BlobPorts:
    """A step's ports in Azure and on devhost: the ledger blob, ARM through MLClient, the shared write bucket."""

    def __init__(self, store: Any, blob: str, ledger: Ledger, trace: Mapping[str, str] | None) -> None:
        self.store, self.blob, self.workspace, self.trace = store, blob, ledger.workspace, trace

    def now(self) -> datetime:
        return datetime.now(UTC)

    def listing(self) -> tuple[list[ComputeInstance] | None, str | None, dict[str, int]]:
        from shared.compute.arm_batch import list_workspace

        instances, error, _, counts = list_workspace(self.workspace)
        return instances, error, counts.to_dict()

    def reserve(self, writes: int, now: datetime) -> float:
        from shared.arm_budget import reserve_shared_writes
        from shared.compute.run_ids import subscription_of

        return reserve_shared_writes(self.store.container, subscription_of(self.workspace), writes)

    def send(self, posts: Sequence[Post], offsets: Sequence[float]) -> tuple[list[StopOutcome], dict[str, int]]:
        from shared.compute.arm_batch import send_paced

        outcomes, counts = send_paced(self.workspace, posts, offsets, self.trace)
        from shared.arm_budget import remember_limits
        from shared.compute.run_ids import subscription_of

        remember_limits(self.store.container, subscription_of(self.workspace))
        return outcomes, counts.to_dict()

    def save(self, ledger: Ledger) -> None:
        self.store.write(self.blob, ledger)

    def lost_claims(self, ledger: Ledger, now: datetime, until: datetime | None = None) -> dict[str, str]:
        from shared.compute.reconcile_state import LEASE, ReadState, renew, update_state

        lease = parse_time(ledger.lease_until)
        if lease is not None and now < lease - LEASE / 2 and (until is None or lease >= until):
            return {}  # renewed not long ago: nobody can have taken a live claim

        def change(read: ReadState) -> tuple[dict[str, str], bool]:
            changed, lost = renew(read.state, ledger.claims, ledger.run_id, now, until)
            return lost, changed

        lost, read = update_state(self.store.container, self.workspace, now, now, change)
        ours = [read.state.schedules[k].claim for k in ledger.claims if k not in lost and k in read.state.schedules]
        leases = [claim.lease_until for claim in ours if claim is not None]
        ledger.lease_until = iso(min(leases)) if leases else None
        return lost

    def due_stops(self, ledger: Ledger, planned: Mapping[str, datetime], now: datetime) -> DueDecision:
        from shared.compute.postponements import take_due

        return take_due(ledger.run_id, ledger.workspace, planned, now, announced=True)

    def observe(self, ledger: Ledger, instances: Sequence[ComputeInstance], now: datetime) -> None:
        from shared.compute.measured import observe
        from shared.errors import AppError

        try:
            observe(ledger.workspace, instances, now)
        except AppError as err:  # measurements are a report: a storage hiccup never holds a stop back
            log.warning("measured savings of %s not observed: %s", ledger.workspace, err)


def step_workspace(run_id: str, workspace: str, trace: Mapping[str, str] | None) -> StepAnswer:
    """One step of `workspace` in run `run_id`, on its ledger blob (see run_step)."""
    from shared.compute.ledger import LedgerStore
    from shared.compute.run_ids import ledger_blob
    from shared.errors import ComputeError
    from shared.settings import REPORTS_CONTAINER

    store = LedgerStore(REPORTS_CONTAINER.get())
    blob = ledger_blob(run_id, workspace)
    ledger = store.read(blob)
    if ledger is None:
        raise ComputeError(f"the ledger {store.container}/{blob} of run {run_id} in {workspace} does not exist")
    if not ledger.open_items():
        return StepAnswer(ledger.progress(), None, {"reads": 0, "writes": 0})
    return run_step(ledger, _BlobPorts(store, blob, ledger, trace))
