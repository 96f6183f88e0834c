"""The plan of a run in one workspace: list it, decide per instance, write the ledger (shared/compute/ledger.py).

The nightly shutdown decides with the policy (shared/compute/policy.py); an instance whose schedule tag names no
configured schedule falls back to it (`UNKNOWN_SCHEDULE_POLICY=nightly`, the default) or is left alone (`skip`),
and its reason names the tag either way. The reconcile decides with the schedules over each schedule's window,
and acts only for the schedules this run claimed (shared/compute/reconcile_state.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.compute.arm import ComputeInstance
from shared.compute.ledger import Ledger, LedgerItem, iso, parse_time
from shared.compute.policy import Decision, decide
from shared.compute.reconcile import Decider, ReconcileRun, unknown_schedule_note
from shared.compute.reconcile_state import ReadState
from shared.compute.schedules import Schedule, next_start, schedule_tag_value
from shared.compute.shutdown_run import ShutdownRun
from shared.payloads import Payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanRequest(Payload):
    """The plan activity's input: the run (its orchestration input) and the workspace to plan."""

    run_id: str
    kind: str  # shutdown | reconcile
    workspace: str
    at: str
    run: dict[str, Any] = field(default_factory=dict)
    final: bool = True  # the last listing attempt: a failure is written to the ledger, not retried
    default_after: str | None = None  # reconcile: where a schedule without progress starts
    requests_before: dict[str, int] = field(default_factory=dict)  # of the earlier, failed listing attempts
    trace: Mapping[str, str] = field(default_factory=dict)
    notice_minutes: float = 0.0  # the heads-up's lead time (shared.compute.notices.notice_plan; 0: none)


@dataclass(frozen=True)
class WorkspacePlan(Payload):
    """What the plan says of one workspace, compact: the listing's result and counts."""

    workspace: str
    instances: int = 0
    error: str | None = None
    retryable: bool = False
    to_act: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    arm_requests: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, ledger: Ledger, retryable: bool = False) -> WorkspacePlan:
        outcomes = Counter(item.outcome for item in ledger.items if item.outcome)
        return cls(
            workspace=ledger.workspace,
            instances=ledger.listed,
            error=ledger.error,
            retryable=retryable,
            to_act=sum(1 for item in ledger.items if item.open),
            outcomes=dict(outcomes),
            arm_requests=dict(ledger.arm_requests),
        )


def _item(instance: ComputeInstance, decision: str, reason: str, action: str, schedule: str | None) -> LedgerItem:
    item = LedgerItem(
        name=instance.name,
        state_before=instance.state,
        decision=decision,
        reason=reason,
        action=action,
        vm_size=instance.size,
        schedule=schedule,
        created_by=instance.created_by,
        tags=dict(instance.tags),
        last_state=instance.state,
    )
    if action == "none":
        item.status = "done"
        item.outcome = "already_stopped" if decision == "already_stopped" else "skipped"
    return item


def shutdown_items(
    instances: Sequence[ComputeInstance],
    run: ShutdownRun,
    now: datetime,
    schedules: Mapping[str, Schedule] | None,
    unknown_policy: str,
    notice: timedelta = timedelta(0),
) -> list[LedgerItem]:
    """The nightly policy's decision on every listed instance (those that follow a schedule are the reconciler's);
    a stop is due `notice` after the run's start (its heads-up goes out meanwhile)."""
    items: list[LedgerItem] = []
    for instance in instances:
        tagged = schedule_tag_value(instance.tags, run.schedule_tag)
        unknown = tagged is not None and schedules is not None and tagged.lower() not in schedules
        decision = decide(
            instance,
            mode=run.mode,
            exempt_tag=run.exempt_tag,
            keep_alive_tag=run.keep_alive_tag,
            now=now,
            include=run.include,
            exclude=run.exclude,
            dry_run=run.dry_run,
            schedule_tag=None if unknown and unknown_policy == "nightly" else run.schedule_tag,
        )
        if unknown:
            assert tagged is not None and schedules is not None
            note = unknown_schedule_note(run.schedule_tag, tagged, schedules, unknown_policy)
            if unknown_policy == "nightly":
                decision = Decision(decision.action, f"{decision.reason}; {note}")
            elif decision.action != "already_stopped":
                decision = Decision("skip", note)
        item = _item(instance, decision.action, decision.reason, "stop" if decision.stops else "none", tagged)
        item.due_at = iso(now + notice if item.action == "stop" else now)
        items.append(item)
    return items


def reconcile_items(
    instances: Sequence[ComputeInstance],
    *,
    run_id: str,
    at: datetime,
    tag: str,
    decider: Decider,
    read: ReadState,
    dry_run: bool,
    notice: timedelta = timedelta(0),
) -> tuple[list[LedgerItem], dict[str, str]]:
    """The decision on every instance that follows a schedule, and the claims of this run it acts for (schedule ->
    the end of its window). A schedule claimed by another run is left to it; one not claimed is only reported.

    When: a start at once (never announced, never delayed); a stop at its boundary (claimed ahead of time when the
    heads-up is on: shared.compute.reconcile_state.stop_ahead), or, for an enforced schedule's stop without a
    boundary, `notice` from now, unless the schedule starts again before then (then it is left running)."""
    items: list[LedgerItem] = []
    claims: dict[str, str] = {}
    for instance in instances:
        name = schedule_tag_value(instance.tags, tag)
        if name is None:
            continue
        decision, reason, boundary = _reconcile_decision(instance, name, run_id, at, decider, read, claims, dry_run)
        due, not_after = at, None
        if decision == "stop" and not dry_run:
            schedule = decider.schedule(name)
            assert schedule is not None  # a stop is decided only for a known schedule
            due, not_after, why_not = _stop_timing(schedule, at, boundary, notice)
            if why_not is not None:
                decision, reason = "none", f"{reason}; {why_not}"
        if decision != "none" and dry_run:
            item = _item(instance, f"would_{decision}", f"dry run: would {reason}", "none", name)
        elif decision != "none":
            item = _item(instance, decision, reason, decision, name)
        else:
            item = _item(instance, "skip", reason, "none", name)
        item.boundary, item.due_at, item.not_after = boundary, iso(due), not_after
        items.append(item)
    return items, claims


def _stop_timing(
    schedule: Schedule, at: datetime, boundary: str | None, notice: timedelta
) -> tuple[datetime, str | None, str | None]:
    """(when a schedule's stop is due, the schedule's next start (a stop postponed past it is not made), why it is
    not made at all)."""
    restart = next_start(schedule, at)
    not_after = iso(restart) if restart is not None else None
    moment = parse_time(boundary)
    if moment is not None:
        return max(moment, at), not_after, None
    due = at + notice
    if notice > timedelta(0) and restart is not None and restart <= due:
        why = f"not stopped: the schedule starts again at {iso(restart)}, before a heads-up of {_minutes(notice)} ends"
        return at, not_after, why
    return due, not_after, None


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


def _reconcile_decision(
    instance: ComputeInstance,
    name: str,
    run_id: str,
    at: datetime,
    decider: Decider,
    read: ReadState,
    claims: dict[str, str],
    dry_run: bool,
) -> tuple[str, str, str | None]:
    schedule = decider.schedule(name)
    if schedule is None or decider.config_error is not None:
        return "none", decider.decide(name, instance.state, at, at).reason, None
    key = schedule.name.lower()
    progress = read.state.schedules.get(key)
    after = progress.done_through if progress else read.default_after
    claim = progress.claim if progress else None
    if claim is not None and claim.run == run_id:
        claims[key] = iso(claim.through)
        verdict = decider.verdict(schedule, after, claim.through)
        decision = verdict.decide(instance.state)
        boundary = iso(verdict.boundary.at) if verdict.boundary else None
        return decision.action, decision.reason, boundary
    if claim is not None and claim.live(at):
        return "none", f"claimed by run {claim.run}: it acts on schedule {schedule.name} now", None
    decision = decider.decide(name, instance.state, after, at)
    if decision.action != "none" and not dry_run:
        # Only the run holding the schedule's window acts on it (it was taken between this run's claims and now).
        return "none", f"not acted on: schedule {schedule.name} is not claimed by this run ({decision.reason})", None
    return decision.action, decision.reason, None


def new_ledger(request: PlanRequest, listed: int, error: str | None, requests: Mapping[str, int]) -> Ledger:
    """A ledger with the run's parameters the steps need and no items yet."""
    at = parse_time(request.at)
    assert at is not None
    before = request.requests_before
    counts = {k: int(requests.get(k, 0)) + int(before.get(k, 0)) for k in ("reads", "writes")}
    if request.kind == "reconcile":
        run = ReconcileRun.from_dict(request.run)
        return Ledger(
            run_id=request.run_id,
            kind="reconcile",
            workspace=request.workspace,
            at=iso(at),
            notice_minutes=request.notice_minutes,
            dry_run=run.dry_run,
            poll_seconds=run.poll_seconds,
            timeout_seconds=run.timeout_seconds,
            attempts=run.retry_attempts,
            listed=listed,
            error=error,
            schedule_tag=run.schedule_tag,
            arm_requests=counts,
        )
    shutdown = ShutdownRun.from_dict(request.run)
    return Ledger(
        run_id=request.run_id,
        kind="shutdown",
        workspace=request.workspace,
        at=iso(at),
        notice_minutes=request.notice_minutes,
        dry_run=shutdown.dry_run,
        poll_seconds=shutdown.poll_seconds,
        timeout_seconds=shutdown.stop_timeout_seconds,
        attempts=shutdown.stop_retry_attempts,
        listed=listed,
        error=error,
        schedule_tag=shutdown.schedule_tag,
        shutdown_schedule=shutdown.shutdown_schedule,
        arm_requests=counts,
    )


def _decide(request: PlanRequest, instances: Sequence[ComputeInstance], ledger: Ledger, container: str) -> None:
    from shared.compute.reconcile import load_schedules
    from shared.compute.reconcile_state import load_state
    from shared.settings import COMPUTE_SCHEDULES, UNKNOWN_SCHEDULE_POLICY

    schedules, config_error = load_schedules(COMPUTE_SCHEDULES.get())
    policy = UNKNOWN_SCHEDULE_POLICY.get()
    at = parse_time(ledger.at)
    assert at is not None
    notice = timedelta(minutes=ledger.notice_minutes)
    if request.kind != "reconcile":
        shutdown = ShutdownRun.from_dict(request.run)
        ledger.items = tuple(shutdown_items(instances, shutdown, at, schedules, policy, notice))
        return
    run = ReconcileRun.from_dict(request.run)
    default_after = parse_time(request.default_after) or at
    read = load_state(container, request.workspace, at, default_after)
    items, claims = reconcile_items(
        instances,
        run_id=request.run_id,
        at=at,
        tag=run.schedule_tag,
        decider=Decider(schedules, config_error, run.schedule_tag, policy),
        read=read,
        dry_run=run.dry_run,
        notice=notice,
    )
    # Every window this run holds here, followed by instances or not: the finish releases each.
    ours = {k: p.claim for k, p in read.state.schedules.items() if p.claim and p.claim.run == request.run_id}
    claims.update({k: iso(claim.through) for k, claim in ours.items()})
    ledger.items, ledger.claims = tuple(items), claims
    leases = [claim.lease_until for claim in ours.values()]
    ledger.lease_until = iso(min(leases)) if leases else None
    dead = sorted({c.taken_from for c in ours.values() if c.taken_from and c.taken_from != request.run_id})
    if dead and not run.dry_run:
        carry_over_notices(ledger, dead)


def carry_over_notices(ledger: Ledger, dead_runs: Sequence[str]) -> None:
    """A run that took over the claims of runs that died (a host lost with them) keeps the choices their owners
    made through the dead runs' links: each waiting stop is due when the owner chose (the step reads it from this
    run's record; the due time here tells the heads-up to announce it again, with a link of this run), and the dead
    runs' records are dropped (their links answer 410)."""
    from shared.compute import postponements

    stops = {item.name: item for item in ledger.items if item.action == "stop" and item.open}
    for dead in dead_runs:
        chosen = postponements.carry_over(dead, ledger.run_id, ledger.workspace, list(stops))
        for name, notice in chosen.items():
            planned = parse_time(stops[name].due_at)
            if planned is not None and notice.due_at() > planned:
                stops[name].due_at = iso(notice.due_at())
        if chosen:
            log.info("run %s carries %d choice(s) of run %s in %s", ledger.run_id, len(chosen), dead, ledger.workspace)


def plan_workspace(request: PlanRequest) -> WorkspacePlan:
    """List the workspace and write its ledger; once written, a repeat of the same plan returns it as it is."""
    from shared import blobs
    from shared.compute.arm_batch import list_workspace
    from shared.compute.ledger import LedgerStore
    from shared.compute.run_ids import ledger_blob
    from shared.errors import OutputChangedError
    from shared.settings import REPORTS_CONTAINER

    container = REPORTS_CONTAINER.get()
    store, blob = LedgerStore(container), ledger_blob(request.run_id, request.workspace)
    existing = store.read(blob)
    if existing is not None and existing.error is None:
        return WorkspacePlan.of(existing)  # planned already: an activity runs at least once
    instances, error, retryable, counts = list_workspace(request.workspace)
    if instances is None and retryable and not request.final:
        before = request.requests_before
        requests = {k: getattr(counts, k) + int(before.get(k, 0)) for k in ("reads", "writes")}
        return WorkspacePlan(request.workspace, error=error, retryable=True, arm_requests=requests)
    ledger = new_ledger(request, len(instances or []), error, counts.to_dict())
    if instances or request.kind == "reconcile":  # a reconcile's claims are in the ledger even if nothing was listed
        _decide(request, instances or [], ledger, container)
    blobs.ensure_container(container)
    try:
        store.write(blob, ledger, create=existing is None)
    except OutputChangedError:
        again = store.read(blob)  # planned at the same time by a repeat of this activity: keep what it wrote
        if again is None:
            raise
        return WorkspacePlan.of(again)
    log.info(
        "planned %s for run %s: %d listed, %d to act",
        request.workspace,
        request.run_id,
        ledger.listed,
        len(ledger.open_items()),
    )
    return WorkspacePlan.of(ledger)
