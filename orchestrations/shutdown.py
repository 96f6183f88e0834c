"""The nightly compute shutdown: plan every workspace (list, policy) -> stop and confirm per workspace -> report.

The phases fan out per subscription and workspace (orchestrations/compute_run.py, compute_fanout.py); this
orchestration keeps counts only. Its output is the report's summary (every field but `instances`, plus the
first failures and `report_blob`); the report blob holds every instance. Deterministic generator: only context
calls; time is `context.current_utc_datetime`; no I/O, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.compute_run import (
    execute_phase,
    notice_phase,
    plan_phase,
    planned_outcomes,
    progress,
    report_phase,
)
from shared import names
from shared.compute.report import WorkspaceResult, all_workspaces_failed_message, report_blob_name
from shared.compute.run_notices import heads_up
from shared.compute.run_summary import report_head
from shared.compute.shutdown_run import ShutdownRun
from shared.errors import ComputeError

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.SHUTDOWN_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.SHUTDOWN_ORCHESTRATOR)
def shutdown_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run = ShutdownRun.from_dict(context.get_input())
    started = context.current_utc_datetime
    if not context.is_replaying:
        log.info(
            "shutdown %s: %d workspace(s), dry_run=%s, trigger=%s",
            context.instance_id,
            len(run.workspaces),
            run.dry_run,
            run.trigger,
        )
    context.set_custom_status({"phase": "listing", "workspaces": len(run.workspaces)})
    notice = yield from notice_phase(context, run.notice_minutes, run.dry_run, run.notice_error)
    plans = yield from plan_phase(
        context,
        kind="shutdown",
        run=run.to_dict(),
        workspaces=run.workspaces,
        at=started,
        poll_seconds=run.poll_seconds,
        trace=run.trace,
        notice_minutes=notice.minutes,
    )
    context.set_custom_status(progress("stopping", plans, planned_outcomes(plans), "to_stop"))
    tally, sent = yield from execute_phase(context, kind="shutdown", plans=plans, trace=run.trace, notice=notice)
    workspaces = [WorkspaceResult(p.workspace, p.instances, p.error) for p in plans]
    head = report_head(
        instance_id=context.instance_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        mode=run.mode,
        started_at=started,
        finished_at=context.current_utc_datetime,
        workspaces=workspaces,
        tally=tally,
        extra={"heads_up": heads_up(notice, sent)},
    )
    context.set_custom_status(progress("saving report", plans, tally.outcomes, "to_stop"))
    blob_name = report_blob_name(context.instance_id, started)
    saved, error = yield from report_phase(context, blob_name, head, tally.parts, run.trace)
    context.set_custom_status(progress("done", plans, tally.outcomes, "to_stop"))
    failure = all_workspaces_failed_message(workspaces)
    if failure is not None:
        raise ComputeError(failure)
    if not context.is_replaying:
        log.info("shutdown %s done: %s", context.instance_id, head["totals"])
    return {**head, "failures": list(tally.failures), "report_blob": saved, "report_error": error}
