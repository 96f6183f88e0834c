"""The schedules reconciler: start and stop instances that follow a working-hours schedule at its boundaries.

Mechanism: a timer trigger every minute (triggers/schedules.py; `RECONCILE_TIMER=false` turns it off) starts one
short run, with an instance id per minute (a timer firing twice starts it once). Rather than one eternal
orchestration sleeping on durable timers until the next boundary, because (1) a change of COMPUTE_SCHEDULES is
seen by the next minute's run; (2) nothing must be kept alive: a run that dies is followed by the next minute's
run; (3) a run whose windows hold no boundary (most minutes) costs no ARM request.

Exactly once per (instance, boundary): the run opens by claiming, in each workspace's progress blob, every
schedule window (done_through, now] that holds a boundary (or is enforced) and no other run holds
(shared/compute/reconcile_state.py). Only claimed windows are acted on; the progress moves past a window only
when it was acted on in full (a failed listing or an ARM outage leaves it for the next run); a dead run's claim
expires and the next run takes over, from a fresh listing. Then the same phases as the nightly shutdown: plan,
act and confirm per workspace, report. Dry runs claim nothing and move nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from orchestrations.compute_run import (
    REPORT_RETRY,
    execute_phase,
    plan_phase,
    planned_outcomes,
    progress,
    report_phase,
)
from shared import names
from shared.compute.notices import NoticePlan
from shared.compute.reconcile import ReconcileRun
from shared.compute.reconcile_open import Opened
from shared.compute.report import WorkspaceResult, report_blob_name
from shared.compute.run_notices import heads_up
from shared.compute.run_summary import Tally, report_head

bp = df.Blueprint()

log = logging.getLogger(__name__)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@bp.function_name(names.RECONCILE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.RECONCILE_ORCHESTRATOR)
def reconcile_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run = ReconcileRun.from_dict(context.get_input())
    at = _utc(context.current_utc_datetime)
    opened = yield from _open(context, run, at)
    if opened.quiet:
        return {"instance_id": context.instance_id, "evaluated_at": at.isoformat(), "acted": False}
    context.set_custom_status({"phase": "listing", "workspaces": len(opened.workspaces)})
    plans = yield from plan_phase(
        context,
        kind="reconcile",
        run=run.to_dict(),
        workspaces=opened.workspaces,
        at=at,
        poll_seconds=run.poll_seconds,
        trace=run.trace,
        default_after=opened.default_after,
        notice_minutes=opened.notice_minutes,
    )
    context.set_custom_status(progress("acting", plans, planned_outcomes(plans), "to_act"))
    notice = NoticePlan(opened.notice_minutes, opened.notice_error)
    tally, sent = yield from execute_phase(context, kind="reconcile", plans=plans, trace=run.trace, notice=notice)
    workspaces = [WorkspaceResult(p.workspace, p.instances, p.error) for p in plans]
    head = report_head(
        instance_id=context.instance_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        mode="schedules",
        started_at=at,
        finished_at=context.current_utc_datetime,
        workspaces=workspaces,
        tally=tally,
        extra={
            "window": {"after": opened.after or at.isoformat(), "at": at.isoformat()},
            "schedules_error": opened.schedules_error,
            "state_errors": list(opened.state_errors),
            "heads_up": heads_up(notice, sent),
        },
    )
    blob_name = None if _eventless(run, opened, tally) else report_blob_name(context.instance_id, at, "reconcile")
    saved, error = yield from report_phase(context, blob_name, head, tally.parts, run.trace)
    context.set_custom_status(progress("done", plans, tally.outcomes, "to_act"))
    if not context.is_replaying:
        log.info("reconcile %s done: %s", context.instance_id, head["totals"])
    return {**head, "failures": list(tally.failures), "report_blob": saved, "report_error": error}


def _open(context: df.DurableOrchestrationContext, run: ReconcileRun, at: datetime) -> Generator[Any, Any, Opened]:
    request = {
        "run_id": context.instance_id,
        "at": at.isoformat(),
        "workspaces": list(run.workspaces),
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "trace": dict(run.trace),
        "notice_minutes": run.notice_minutes,
        "notice_error": run.notice_error,
    }
    opened = Opened.from_dict((yield context.call_activity_with_retry(names.OPEN_RECONCILE, REPORT_RETRY, request)))
    if not context.is_replaying:
        log.info(
            "reconcile %s at %s: %d window(s) claimed, %d held by other runs, dry_run=%s",
            context.instance_id,
            at.isoformat(),
            opened.claimed,
            opened.busy,
            run.dry_run,
        )
    return opened


def _eventless(run: ReconcileRun, opened: Opened, tally: Tally) -> bool:
    """A timer's run that sent nothing and found nothing wrong keeps no report: an enforced schedule makes every
    minute's run list the fleet, and 1,440 empty reports a day would bury the ones that matter."""
    failed = tally.outcomes.get("failed", 0) + tally.outcomes.get("timed_out", 0)
    wrong = opened.schedules_error or opened.state_errors or any(w.error for w in tally.workspaces) or failed
    return run.trigger == "timer" and tally.acted == 0 and not wrong
