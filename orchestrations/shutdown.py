"""Compute shutdown orchestrations: list every workspace -> policy -> stop, confirm each instance -> report.

Deterministic generators: only context calls; time is `context.current_utc_datetime`; no I/O, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from orchestrations.compute_actions import act_and_confirm, list_workspaces, priced_results, save_report
from shared import names
from shared.compute.arm import ComputeInstance, Listing
from shared.compute.policy import Decision, decide
from shared.compute.report import (
    InstanceResult,
    WorkspaceResult,
    all_workspaces_failed_message,
    build_report,
    progress_status,
    report_blob_name,
    result_without_stop,
    stop_result,
)
from shared.compute.shutdown_run import ShutdownRun
from shared.errors import ComputeError

bp = df.Blueprint()

log = logging.getLogger(__name__)

Listings = dict[str, Listing]
ToStop = list[tuple[ComputeInstance, Decision]]


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
    arm_requests = {"reads": 0, "writes": 0}  # counted on the wire by the activities
    listings = yield from list_workspaces(
        context, run.workspaces, poll_seconds=run.poll_seconds, trace=run.trace, requests=arm_requests
    )
    workspaces = [WorkspaceResult(ws, len(listings[ws].instances), listings[ws].error) for ws in run.workspaces]
    now = context.current_utc_datetime
    results, to_stop = _decide_all(run, listings, now)
    planned = len(results) + len(to_stop)
    context.set_custom_status(progress_status("stopping", planned, results, len(to_stop)))

    failure = all_workspaces_failed_message(workspaces)
    if to_stop and failure is None:
        results.extend((yield from _stop(context, run, to_stop, arm_requests)))
    context.set_custom_status(progress_status("stopping", planned, results, len(to_stop)))
    listed = {(i.workspace, i.name): i for i in _instances(run, listings)}
    results, savings_error = yield from priced_results(
        context, results, listed, now, run.schedule_tag, run.shutdown_schedule, None, run.trace
    )

    report = build_report(
        instance_id=context.instance_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        mode=run.mode,
        started_at=started,
        finished_at=context.current_utc_datetime,
        workspaces=workspaces,
        instances=results,
        arm_requests=arm_requests,
    ).to_dict() | {"savings_error": savings_error}
    context.set_custom_status(progress_status("saving report", planned, results, len(to_stop)))
    yield from save_report(context, report_blob_name(context.instance_id, started), report, run.trace)
    context.set_custom_status(progress_status("done", planned, results, len(to_stop)))
    if failure is not None:
        raise ComputeError(failure)
    if not context.is_replaying:
        log.info("shutdown %s done: %s", context.instance_id, report["totals"])
    return report


def _instances(run: ShutdownRun, listings: Listings) -> list[ComputeInstance]:
    return [instance for ws in run.workspaces for instance in listings[ws].instances]


def _decide_all(run: ShutdownRun, listings: Listings, now: datetime) -> tuple[list[InstanceResult], ToStop]:
    """The policy's decision on every listed instance: the results of those left alone, and those to stop."""
    results: list[InstanceResult] = []
    to_stop: ToStop = []
    for instance in _instances(run, listings):
        decision = decide(
            instance,
            mode=run.mode,
            exempt_tag=run.exempt_tag,
            keep_alive_tag=run.keep_alive_tag,
            now=now,
            include=run.include,
            exclude=run.exclude,
            dry_run=run.dry_run,
            schedule_tag=run.schedule_tag,
        )
        if decision.stops:
            to_stop.append((instance, decision))
        else:
            results.append(result_without_stop(instance, decision))
    return results, to_stop


def _stop(
    context: df.DurableOrchestrationContext, run: ShutdownRun, to_stop: ToStop, arm_requests: dict[str, int]
) -> Generator[Any, Any, list[InstanceResult]]:
    """Stop every instance the policy chose and confirm it stopped: one result each, in order."""
    outcomes = yield from act_and_confirm(
        context,
        [{"workspace": i.workspace, "name": i.name, "action": "stop", "state": i.state} for i, _ in to_stop],
        timeout_seconds=run.stop_timeout_seconds,
        poll_seconds=run.poll_seconds,
        attempts=run.stop_retry_attempts,
        trace=run.trace,
        requests=arm_requests,
    )
    return [stop_result(i, d, out) for (i, d), out in zip(to_stop, outcomes, strict=True)]
