"""The schedules reconciler: start and stop instances that follow a working-hours schedule at its boundaries.

Mechanism: a timer trigger every minute (triggers/schedules.py; `RECONCILE_TIMER=false` turns it off) starts one
short run, with an instance id per minute (a timer firing twice starts it once). Rather than one eternal
orchestration sleeping on durable timers until the next boundary, because (1) a change of COMPUTE_SCHEDULES is
seen by the next minute's run, where a sleeping orchestration would wake on a boundary computed from the old
schedules; (2) nothing must be kept alive: a run that dies or is terminated is followed by the next minute's
run; (3) a run whose window holds no boundary (most minutes) costs no ARM request (see `needs_listing`).

Each run evaluates the window (last evaluated instant, now]: every boundary in it is acted on (transitions
only, as AWS Instance Scheduler), or every instance is brought to its desired state (`enforced`). The last
evaluated instant is persisted (`reconcile/state.json` in the reports container) before acting: the next run's
window starts there, so a boundary missed while the app was down is caught up by the first run after it,
once. Dry runs neither act nor move it.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from orchestrations.compute_actions import act_and_confirm, list_workspaces, priced_results, save_report
from shared import names
from shared.compute.reconcile import Planned, ReconcileRun, load_schedules, needs_listing, plan, utc, window_start
from shared.compute.report import (
    InstanceResult,
    WorkspaceResult,
    acted_result,
    build_report,
    report_blob_name,
)

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.RECONCILE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.RECONCILE_ORCHESTRATOR)
def reconcile_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run = ReconcileRun.from_dict(context.get_input())
    at = utc(context.current_utc_datetime)
    schedules, config_error = load_schedules(run.schedules)
    after = yield from _open_window(context, run, at)
    quiet = run.trigger == "timer" and config_error is None and not needs_listing(schedules, after, at)
    if quiet:
        return {"instance_id": context.instance_id, "evaluated_at": at.isoformat(), "acted": False}
    context.set_custom_status({"phase": "listing", "workspaces": len(run.workspaces)})

    requests = {"reads": 0, "writes": 0}
    listings = yield from list_workspaces(
        context, run.workspaces, poll_seconds=run.poll_seconds, trace=run.trace, requests=requests
    )
    workspaces = [WorkspaceResult(ws, len(listings[ws].instances), listings[ws].error) for ws in run.workspaces]
    instances = [instance for ws in run.workspaces for instance in listings[ws].instances]
    planned = plan(
        instances, schedules=schedules, config_error=config_error, tag=run.schedule_tag, at=at, last_evaluated=after
    )
    results, to_act = _split(planned, dry_run=run.dry_run)
    context.set_custom_status({"phase": "acting", "instances": len(planned), "to_act": len(to_act)})
    if to_act:
        results.extend((yield from _act(context, run, to_act, requests)))

    listed = {(i.workspace, i.name): i for i in instances}
    results, savings_error = yield from priced_results(
        context, results, listed, at, run.schedule_tag, "", schedules, run.trace
    )
    report = build_report(
        instance_id=context.instance_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        mode="schedules",
        started_at=at,
        finished_at=context.current_utc_datetime,
        workspaces=workspaces,
        instances=results,
        arm_requests=requests,
    ).to_dict()
    report["window"] = {"after": after.isoformat(), "at": at.isoformat()}
    report["schedules_error"] = config_error
    report["savings_error"] = savings_error
    eventless = run.trigger == "timer" and not to_act and config_error is None and not any(w.error for w in workspaces)
    yield from _keep_report(context, run, report, at, eventless=eventless)
    context.set_custom_status({"phase": "done", "instances": len(planned), "to_act": len(to_act)})
    if not context.is_replaying:
        log.info("reconcile %s done: %s", context.instance_id, report["totals"])
    return report


def _open_window(
    context: df.DurableOrchestrationContext, run: ReconcileRun, at: datetime
) -> Generator[Any, Any, datetime]:
    """The start of this run's window (the last evaluated instant); moved to `at` unless this is a dry run."""
    state = yield context.call_activity(names.LOAD_RECONCILE_STATE, {"trace": dict(run.trace)})
    after = window_start(state.get("last_evaluated"), at)
    if not run.dry_run:
        # Before acting: an overlapping run's window starts here, so no boundary is acted on twice; the actions
        # below still happen after a host restart (the orchestration is durable).
        yield context.call_activity(names.SAVE_RECONCILE_STATE, {"last_evaluated": at.isoformat(), "trace": {}})
    if not context.is_replaying:
        log.info("reconcile %s: window %s .. %s, dry_run=%s", context.instance_id, after, at, run.dry_run)
    return after


def _split(planned: list[Planned], *, dry_run: bool) -> tuple[list[InstanceResult], list[Planned]]:
    """The results of the instances left as they are (or only reported, in a dry run), and those to act on."""
    results: list[InstanceResult] = []
    to_act: list[Planned] = []
    for item in planned:
        decision = item.decision
        if decision.action == "none" or dry_run:
            verb = "skip" if decision.action == "none" else f"would_{decision.action}"
            reason = decision.reason if decision.action == "none" else f"dry run: would {decision.reason}"
            results.append(
                InstanceResult(
                    item.instance.workspace, item.instance.name, item.instance.state, verb, reason, "skipped"
                )
            )
        else:
            to_act.append(item)
    return results, to_act


def _act(
    context: df.DurableOrchestrationContext, run: ReconcileRun, to_act: list[Planned], requests: dict[str, int]
) -> Generator[Any, Any, list[InstanceResult]]:
    """Start or stop every planned instance and confirm it: one result each, in order."""
    outcomes = yield from act_and_confirm(
        context,
        [
            {
                "workspace": p.instance.workspace,
                "name": p.instance.name,
                "action": p.decision.action,
                "state": p.instance.state,
            }
            for p in to_act
        ],
        timeout_seconds=run.timeout_seconds,
        poll_seconds=run.poll_seconds,
        attempts=run.retry_attempts,
        trace=run.trace,
        requests=requests,
    )
    return [
        acted_result(p.instance, p.decision.action, p.decision.reason, monitored)
        for p, monitored in zip(to_act, outcomes, strict=True)
    ]


def _keep_report(
    context: df.DurableOrchestrationContext,
    run: ReconcileRun,
    report: dict[str, Any],
    at: datetime,
    *,
    eventless: bool,
) -> Generator[Any, Any, None]:
    """Save the report unless the run was eventless: an enforced schedule makes every minute's run list the
    fleet; a report is kept only when it did something or something is wrong (1,440 empty reports a day would
    bury the ones that matter)."""
    if eventless:
        report["report_blob"], report["report_error"] = None, None
        return
    yield from save_report(context, report_blob_name(context.instance_id, at, kind="reconcile"), report, run.trace)
