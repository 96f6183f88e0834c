"""Compute shutdown orchestrations: list every workspace -> policy -> stop, confirm each instance -> report.

Deterministic generators: only context calls; time is `context.current_utc_datetime`; no I/O, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations import bp
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

log = logging.getLogger(__name__)

LIST_ROUNDS = 3  # listing attempts per workspace; the activity's own SDK retries happen inside each
STOP_WAVE = 1000  # sub-orchestrations awaited together: bounds the parent's history (~2 events each)
MAX_STOP_REQUESTS = 3  # stop re-issued after a 409 (in transition) at most this many times in all
REPORT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
TRANSITIONAL = frozenset({"Stopping", "Starting", "Restarting", "Creating", "SettingUp", "UserSettingUp", "Unknown"})
MAX_ERROR_CHARS = 500


def _brief(err: BaseException) -> str:
    """A failed task's message on one bounded line: hosts may append a stack trace, and the error of every
    instance is part of the orchestration's output and history (kept small, replayed on each step)."""
    text = " ".join(str(err).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


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
    pending = list(run.workspaces)
    for attempt in range(1, LIST_ROUNDS + 1):
        outputs = yield context.task_all(
            [
                context.call_activity(names.LIST_COMPUTE_INSTANCES, {"workspace": ws, "trace": dict(run.trace)})
                for ws in pending
            ]
        )
        listings.update(zip(pending, outputs, strict=True))
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
    for first in range(0, len(to_stop) if failure is None else 0, STOP_WAVE):
        wave = to_stop[first : first + STOP_WAVE]
        outputs = yield context.task_all(
            [
                context.call_sub_orchestrator(
                    names.STOP_MONITOR_ORCHESTRATOR,
                    {
                        "workspace": instance.workspace,
                        "name": instance.name,
                        "timeout_seconds": run.stop_timeout_seconds,
                        "poll_seconds": run.poll_seconds,
                        "retry_attempts": run.stop_retry_attempts,
                        "trace": dict(run.trace),
                    },
                    f"{context.instance_id}:stop:{first + offset}",
                )
                for offset, (instance, _) in enumerate(wave)
            ]
        )
        results.extend(stop_result(i, d, out) for (i, d), out in zip(wave, outputs, strict=True))
        context.set_custom_status(progress_status("stopping", planned, results, len(to_stop)))

    report = build_report(
        instance_id=context.instance_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        mode=run.mode,
        started_at=started,
        finished_at=context.current_utc_datetime,
        workspaces=workspaces,
        instances=results,
    ).to_dict()
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
        report["report_error"] = f"saving the report to {blob_name} failed: {_brief(err)}"
    context.set_custom_status(progress_status("done", planned, results, len(to_stop)))
    if failure is not None:
        raise ComputeError(failure)
    if not context.is_replaying:
        log.info("shutdown %s done: %s", context.instance_id, report["totals"])
    return report


@bp.function_name(names.STOP_MONITOR_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.STOP_MONITOR_ORCHESTRATOR)
def stop_monitor_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Stop one instance and confirm `Stopped` by polling on durable timers, bounded by the stop timeout.

    Never fails: every ending is an outcome for the report, so one instance cannot sink the others.
    """
    job: dict[str, Any] = context.get_input()
    target = {"workspace": job["workspace"], "name": job["name"], "trace": job.get("trace") or {}}
    started = context.current_utc_datetime
    timeout = int(job["timeout_seconds"])
    deadline = started + timedelta(seconds=timeout)
    poll = timedelta(seconds=int(job["poll_seconds"]))
    attempts = int(job["retry_attempts"])
    # Activity retries on durable timers (no worker held): 429/5xx that outlived the SDK's own retries.
    retry = df.RetryOptions(
        first_retry_interval_in_milliseconds=max(1, int(job["poll_seconds"])) * 1000,
        max_number_of_attempts=attempts,
    )

    def ending(outcome: str, error: str | None = None, note: str | None = None) -> dict[str, Any]:
        seconds = (context.current_utc_datetime - started).total_seconds()
        if not context.is_replaying:
            log.info(
                "stop of %s in %s: %s after %.1f s %s",
                target["name"],
                target["workspace"],
                outcome,
                seconds,
                error or note or "",
            )
        return {"outcome": outcome, "error": error, "note": note, "seconds": seconds}

    try:
        stop = yield context.call_activity_with_retry(names.STOP_COMPUTE_INSTANCE, retry, target)
    except Exception as err:
        return ending("failed", error=f"stop request failed after {attempts} attempt(s): {_brief(err)}")
    requests = 1
    status = stop["status"]
    state = stop.get("state_before") or "Unknown"
    while True:
        if status == "already_stopped":
            return ending("already_stopped", note=stop.get("message"))
        if status == "not_found":
            return ending("skipped", note="not found (deleted meanwhile?)")
        if status == "failed":
            return ending("failed", error=stop.get("message") or "ARM refused the stop")
        if context.current_utc_datetime >= deadline:
            return ending("timed_out", error=f"not Stopped within {timeout} s (last seen {state})")
        yield context.create_timer(min(context.current_utc_datetime + poll, deadline))
        try:
            view = yield context.call_activity_with_retry(names.GET_COMPUTE_STATE, retry, target)
        except Exception as err:
            return ending("failed", error=f"reading the state failed after {attempts} attempt(s): {_brief(err)}")
        if not view["found"]:
            return ending("skipped", note="not found (deleted while stopping)")
        state = view["state"]
        last = view.get("last_operation") or {}
        if state == "Stopped":
            return ending("stopped", note="after a 409, re-checked" if requests > 1 else None)
        if state in TRANSITIONAL:
            continue
        if last.get("operation_name") == "Stop" and last.get("operation_status") == "Failed":
            return ending("failed", error=f"the stop operation failed in Azure ML; the instance is {state}")
        if state == "JobRunning" and status == "in_transition":
            return ending("skipped", note="a job started meanwhile (JobRunning); not interrupted")
        if status == "in_transition":
            if requests >= MAX_STOP_REQUESTS:
                return ending("failed", error=f"still {state} after {requests} stop requests answered 409")
            try:
                stop = yield context.call_activity_with_retry(names.STOP_COMPUTE_INSTANCE, retry, target)
            except Exception as err:
                return ending("failed", error=f"stop request failed after {attempts} attempt(s): {_brief(err)}")
            requests += 1
            status = stop["status"]
        # status "stopping" with a stable state: ARM may show the old state briefly after the 202; keep polling.
