"""Compute shutdown orchestrations: list every workspace -> policy -> stop, confirm each instance -> report.

Deterministic generators: only context calls; time is `context.current_utc_datetime`; no I/O, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations import bp
from shared import names
from shared.compute import ComputeInstance
from shared.errors import ComputeError
from shared.policy import Decision, decide
from shared.savings import priced_sizes, with_savings
from shared.schedules import Schedule
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


def _brief(err: BaseException | str) -> str:
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
    arm_requests = {"reads": 0, "writes": 0}  # counted on the wire by the activities
    pending = list(run.workspaces)
    for attempt in range(1, LIST_ROUNDS + 1):
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
    waves = [
        to_stop[first : first + STOP_WAVE] for first in range(0, len(to_stop) if failure is None else 0, STOP_WAVE)
    ]
    # Waves run together (each confirms its own instances by listing); a wave bounds one history's size.
    waved: list[dict[str, Any]] = []
    if waves:
        waved = yield context.task_all(
            [
                context.call_sub_orchestrator(
                    names.COMPUTE_ACTIONS_ORCHESTRATOR,
                    {
                        "items": [
                            {"workspace": i.workspace, "name": i.name, "action": "stop", "state": i.state}
                            for i, _ in wave
                        ],
                        "timeout_seconds": run.stop_timeout_seconds,
                        "poll_seconds": run.poll_seconds,
                        "retry_attempts": run.stop_retry_attempts,
                        "trace": dict(run.trace),
                    },
                    f"{context.instance_id}:stop:{number}",
                )
                for number, wave in enumerate(waves)
            ]
        )
    for wave, output in zip(waves, waved, strict=True):
        results.extend(stop_result(i, d, out) for (i, d), out in zip(wave, output["results"], strict=True))
        for kind in ("reads", "writes"):
            arm_requests[kind] += output["arm_requests"][kind]
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
        report["report_error"] = f"saving the report to {blob_name} failed: {_brief(err)}"
    context.set_custom_status(progress_status("done", planned, results, len(to_stop)))
    if failure is not None:
        raise ComputeError(failure)
    if not context.is_replaying:
        log.info("shutdown %s done: %s", context.instance_id, report["totals"])
    return report


def priced_results(
    context: df.DurableOrchestrationContext,
    results: list[InstanceResult],
    listed: dict[tuple[str, str], ComputeInstance],
    at: datetime,
    tag: str,
    shutdown_schedule: str,
    schedules: dict[str, Schedule] | None,
    trace: Mapping[str, str],
) -> Generator[Any, Any, tuple[list[InstanceResult], str | None]]:
    """The results with their savings estimates (prices through an activity); a pricing failure is a note."""
    sizes = priced_sizes(results, listed)
    if not sizes:
        return results, None
    prices: dict[str, Any] = {}
    error: str | None = None
    try:
        answer = yield context.call_activity(names.PRICE_COMPUTE_SIZES, {"sizes": sizes, "trace": dict(trace)})
        prices, error = answer["prices"], answer.get("error")
    except Exception as err:
        error = f"prices not read: {_brief(err)}"
    priced = with_savings(
        results, listed, prices, at, schedules=schedules, tag=tag, shutdown_schedule=shutdown_schedule
    )
    return priced, error


WRITE_BATCH = 200  # POSTs per activity: ARM's write burst per subscription (200 tokens, then 10/s)
TARGET = {"stop": "Stopped", "start": "Running"}
DONE_OUTCOME = {"stop": "stopped", "start": "started"}


def _subscription(workspace: str) -> str:
    return workspace.split("/", 1)[0].lower()


def _batches(indexes: list[int], items: list[dict[str, Any]]) -> list[list[list[int]]]:
    """Rounds of batches: round k holds the k-th batch of every subscription (subscriptions have their own
    ARM budgets, so they go in parallel; a subscription's batches go one after the other)."""
    by_sub: dict[str, list[int]] = {}
    for i in indexes:
        by_sub.setdefault(_subscription(items[i]["workspace"]), []).append(i)
    chunked = [[group[k : k + WRITE_BATCH] for k in range(0, len(group), WRITE_BATCH)] for group in by_sub.values()]
    rounds = max((len(c) for c in chunked), default=0)
    return [[c[k] for c in chunked if k < len(c)] for k in range(rounds)]


@bp.function_name(names.COMPUTE_ACTIONS_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.COMPUTE_ACTIONS_ORCHESTRATOR)
def compute_actions_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Stop or start instances and confirm each reached its target state, within ARM's request budget.

    Requests: one POST per instance (the state comes from the caller's listing, no read before it), sent in
    batches per subscription; confirmation: each workspace with instances still pending is LISTED once per
    poll tick (a page per ~100 instances instead of a GET per instance). Re-sends: after a 409 once the state
    is stable, after a 429/5xx (`retryable`) on the next tick, bounded. Never fails: every ending is an outcome.
    """
    job: dict[str, Any] = context.get_input()
    items: list[dict[str, Any]] = list(job["items"])
    trace = job.get("trace") or {}
    started = context.current_utc_datetime
    timeout = int(job["timeout_seconds"])
    deadline = started + timedelta(seconds=timeout)
    poll = timedelta(seconds=int(job["poll_seconds"]))
    attempts = int(job["retry_attempts"])
    requests = {"reads": 0, "writes": 0}
    sent = [0] * len(items)  # POSTs sent per item
    status: list[str] = ["unsent"] * len(items)
    last_message = [""] * len(items)
    last_state = [str(item.get("state") or "Unknown") for item in items]
    results: list[dict[str, Any] | None] = [None] * len(items)

    def count(answer: dict[str, Any]) -> None:
        for kind in ("reads", "writes"):
            requests[kind] += int((answer.get("arm_requests") or {}).get(kind, 0))

    def end(i: int, outcome: str, error: str | None = None, note: str | None = None) -> None:
        seconds = (context.current_utc_datetime - started).total_seconds()
        results[i] = {"outcome": outcome, "error": error, "note": note, "seconds": seconds}
        if not context.is_replaying:
            item = items[i]
            log.info(
                "%s of %s in %s: %s after %.1f s %s",
                item["action"],
                item["name"],
                item["workspace"],
                outcome,
                seconds,
                error or note or "",
            )

    def send(indexes: list[int]) -> Generator[Any, Any, None]:
        for batches in _batches(indexes, items):
            answers = yield context.task_all(
                [
                    context.call_activity(
                        names.ACT_ON_COMPUTE_INSTANCES,
                        {"items": [{**items[i], "trace": {}} for i in batch], "trace": dict(trace)},
                    )
                    for batch in batches
                ]
            )
            for batch, answer in zip(batches, answers, strict=True):
                count(answer)
                for i, outcome in zip(batch, answer["outcomes"], strict=True):
                    sent[i] += 1
                    settle(i, outcome)

    def settle(i: int, outcome: dict[str, Any]) -> None:
        action = items[i]["action"]
        status[i] = str(outcome["status"])
        last_message[i] = str(outcome.get("message") or "")
        if outcome.get("state_before"):
            last_state[i] = str(outcome["state_before"])
        if status[i] == "already_stopped":
            end(i, "already_stopped", note=last_message[i])
        elif status[i] == "already_running":
            end(i, "skipped", note=f"already {last_state[i]}")
        elif status[i] == "not_found":
            end(i, "skipped", note="not found (deleted meanwhile?)")
        elif status[i] == "failed":
            end(i, "failed", error=_brief(last_message[i]) or f"ARM refused the {action}")
        elif status[i] == "retryable" and sent[i] >= attempts:
            end(i, "failed", error=f"{action} request failed after {sent[i]} attempt(s): {_brief(last_message[i])}")

    yield from send(list(range(len(items))))
    while True:
        pending = [i for i in range(len(items)) if results[i] is None]
        if not pending:
            break
        if context.current_utc_datetime >= deadline:
            for i in pending:
                item = items[i]
                if status[i] == "retryable":
                    end(i, "failed", error=f"{item['action']} request failed: {_brief(last_message[i])}")
                else:
                    end(
                        i,
                        "timed_out",
                        error=f"not {TARGET[item['action']]} within {timeout} s (last seen {last_state[i]})",
                    )
            break
        yield context.create_timer(min(context.current_utc_datetime + poll, deadline))
        watched = sorted({items[i]["workspace"] for i in pending if status[i] != "retryable"})
        listings: list[dict[str, Any]] = []
        if watched:  # (task_all of nothing yields None on some hosts)
            listings = yield context.task_all(
                [
                    context.call_activity(
                        names.READ_COMPUTE_STATES,
                        {
                            "workspace": ws,
                            "names": [items[i]["name"] for i in pending if items[i]["workspace"] == ws],
                            "trace": dict(trace),
                        },
                    )
                    for ws in watched
                ]
            )
        by_ws = dict(zip(watched, listings, strict=True))
        for listing in listings:
            count(listing)
        resend: list[int] = []
        for i in pending:
            item = items[i]
            if status[i] == "retryable":
                resend.append(i)
                continue
            listing = by_ws[item["workspace"]]
            if listing.get("error"):
                continue  # the workspace could not be listed this tick: look again on the next one
            view = listing["states"].get(item["name"])
            if view is None:
                end(
                    i,
                    "skipped",
                    note=f"not found (deleted while {'stopping' if item['action'] == 'stop' else 'starting'})",
                )
                continue
            state, op_name, op_status = view
            last_state[i] = state
            if state == TARGET[item["action"]]:
                end(i, DONE_OUTCOME[item["action"]], note="after a 409, re-checked" if sent[i] > 1 else None)
            elif state in TRANSITIONAL:
                continue
            elif op_name == item["action"].capitalize() and op_status == "Failed":
                end(i, "failed", error=f"the {item['action']} operation failed in Azure ML; the instance is {state}")
            elif item["action"] == "stop" and state == "JobRunning" and status[i] == "in_transition":
                end(i, "skipped", note="a job started meanwhile (JobRunning); not interrupted")
            elif status[i] == "in_transition":
                if sent[i] >= MAX_STOP_REQUESTS:
                    end(i, "failed", error=f"still {state} after {sent[i]} {item['action']} requests answered 409")
                else:
                    items[i] = {**item, "state": state}
                    resend.append(i)
            # an accepted request with a stable state: ARM may show the old state briefly after the 202
        if resend:
            yield from send(resend)
    return {"results": results, "arm_requests": requests}
