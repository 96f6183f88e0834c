"""Compute shutdown orchestrations: list every workspace -> policy -> stop, confirm each instance -> report.

Deterministic generators: only context calls; time is `context.current_utc_datetime`; no I/O, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.compute_actions import act_and_confirm, brief, priced_results
from shared import names
from shared.compute import ComputeInstance
from shared.errors import ComputeError
from shared.policy import Decision, decide
from shared.shutdown_report import (
    InstanceResult,
    WorkspaceResult,
    all_workspaces_failed_message,
    build_report,
    progress_status,
    report_blob_name,
    result_without_stop,
    stop_result,
)
from shared.shutdown_request import ShutdownRun

bp = df.Blueprint()

log = logging.getLogger(__name__)

LIST_ROUNDS = 3  # listing attempts per workspace; the activity's own SDK retries happen inside each
REPORT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


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

    # A listing that fails with 429/5xx (after the SDK's retries) is tried again on a durable timer;
    # the list activity returns failures as values so one workspace cannot fail the task_all of all.
    listings: dict[str, dict[str, Any]] = {}
    arm_requests = {"reads": 0, "writes": 0}  # counted on the wire by the activities
    pending = list(run.workspaces)
    for attempt in range(1, LIST_ROUNDS + 1):
        if not pending:  # df's task_all([]) yields None, not []: an empty workspace list lists nothing
            break
        outputs = yield context.task_all(
            [
                context.call_activity(names.LIST_COMPUTE_INSTANCES, {"workspace": ws, "trace": dict(run.trace)})
                for ws in pending
            ]
        )
        listings.update(zip(pending, outputs, strict=True))
        for output in outputs:
            for kind in ("reads", "writes"):
                arm_requests[kind] += int((output.get("arm_requests") or {}).get(kind, 0))
        pending = [ws for ws in pending if listings[ws].get("retryable")]
        if not pending or attempt == LIST_ROUNDS:
            break
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=run.poll_seconds * attempt))

    workspaces = [
        WorkspaceResult(ws, len(listings[ws]["instances"]), listings[ws].get("error")) for ws in run.workspaces
    ]
    now = context.current_utc_datetime
    results: list[InstanceResult] = []
    to_stop: list[tuple[ComputeInstance, Decision]] = []
    for ws in run.workspaces:
        for raw in listings[ws]["instances"]:
            instance = ComputeInstance.from_dict(raw)
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
    planned = len(results) + len(to_stop)
    context.set_custom_status(progress_status("stopping", planned, results, len(to_stop)))

    failure = all_workspaces_failed_message(workspaces)
    if to_stop and failure is None:
        outcomes = yield from act_and_confirm(
            context,
            [{"workspace": i.workspace, "name": i.name, "action": "stop", "state": i.state} for i, _ in to_stop],
            timeout_seconds=run.stop_timeout_seconds,
            poll_seconds=run.poll_seconds,
            attempts=run.stop_retry_attempts,
            trace=run.trace,
            requests=arm_requests,
        )
        results.extend(stop_result(i, d, out) for (i, d), out in zip(to_stop, outcomes, strict=True))
    context.set_custom_status(progress_status("stopping", planned, results, len(to_stop)))
    listed = {
        (i["workspace"], i["name"]): ComputeInstance.from_dict(i)
        for ws in run.workspaces
        for i in listings[ws]["instances"]
    }
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
    ).to_dict()
    report["savings_error"] = savings_error
    context.set_custom_status(progress_status("saving report", planned, results, len(to_stop)))
    blob_name = report_blob_name(context.instance_id, started)
    try:
        report["report_blob"] = yield context.call_activity_with_retry(
            names.SAVE_SHUTDOWN_REPORT,
            REPORT_RETRY,
            {"blob_name": blob_name, "report": report, "trace": dict(run.trace)},
        )
        report["report_error"] = None
    except Exception as err:  # the report is still the output; only its copy in storage is missing
        report["report_blob"] = None
        report["report_error"] = f"saving the report to {blob_name} failed: {brief(err)}"
    context.set_custom_status(progress_status("done", planned, results, len(to_stop)))
    if failure is not None:
        raise ComputeError(failure)
    if not context.is_replaying:
        log.info("shutdown %s done: %s", context.instance_id, report["totals"])
    return report
