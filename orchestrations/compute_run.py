"""The phases a compute run's top orchestration (shutdown or reconcile) shares: plan every workspace, run them
(with the heads-up's notify phase beside them), assemble the report. Generator helpers run inline (`yield from`) in
the calling orchestrator: only context calls.

Each phase fans out one sub-orchestration per subscription (orchestrations/compute_fanout.py), with instance ids
derived from the run's (shared/compute/run_ids.py), so the top's history holds one event pair per subscription
and phase whatever the fleet's size.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.compute.notices import NoticePlan
from shared.compute.report import OUTCOMES
from shared.compute.run_ids import subscription_instance_id, subscription_of
from shared.compute.run_summary import Tally, merge
from shared.compute.workspace_plan import WorkspacePlan
from shared.compute.workspace_step import brief

REPORT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
NOTICE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1_000, max_number_of_attempts=3)


def by_subscription(workspaces: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for ws in workspaces:
        groups.setdefault(subscription_of(ws), []).append(ws)
    return groups


def plan_phase(
    context: df.DurableOrchestrationContext,
    *,
    kind: str,
    run: Mapping[str, Any],
    workspaces: Sequence[str],
    at: datetime,
    poll_seconds: int,
    trace: Mapping[str, str],
    default_after: str | None = None,
    notice_minutes: float = 0.0,
) -> Generator[Any, Any, list[WorkspacePlan]]:
    """Every workspace listed and decided on (its ledger written, stops due after their heads-up); a WorkspacePlan
    each, in the given order."""
    run_id = context.instance_id
    job = {"run_id": run_id, "kind": kind, "at": at.isoformat(), "run": dict(run), "poll_seconds": poll_seconds}
    job |= {"default_after": default_after, "trace": dict(trace), "notice_minutes": notice_minutes}
    tasks = [
        context.call_sub_orchestrator(
            names.COMPUTE_PLAN_ORCHESTRATOR, {**job, "workspaces": group}, subscription_instance_id(run_id, sub, "plan")
        )
        for sub, group in by_subscription(workspaces).items()
    ]
    outputs = (yield context.task_all(tasks)) if tasks else []  # df's task_all([]) yields None
    plans = {p["workspace"]: WorkspacePlan.from_dict(p) for output in outputs for p in output}
    return [plans[ws] for ws in workspaces]


def notice_phase(
    context: df.DurableOrchestrationContext, minutes: float, dry_run: bool, error: str | None
) -> Generator[Any, Any, NoticePlan]:
    """The heads-up's lead time of the run (an activity checks the channels and link settings); no activity when
    nothing can be announced (a dry run, or 0 minutes asked)."""
    if dry_run or (minutes <= 0 and not error):
        return NoticePlan(0.0)
    request = {"minutes": minutes, "dry_run": dry_run, "error": error}
    try:
        plan = yield context.call_activity_with_retry(names.PLAN_COMPUTE_NOTICE, NOTICE_RETRY, request)
    except Exception as err:  # the stops go on without a heads-up; the report says why
        return NoticePlan(0.0, f"no heads-up was sent: {brief(err)}")
    return NoticePlan.from_dict(plan)


def execute_phase(
    context: df.DurableOrchestrationContext,
    *,
    kind: str,
    plans: Sequence[WorkspacePlan],
    trace: Mapping[str, str],
    notice: NoticePlan | None = None,
) -> Generator[Any, Any, tuple[Tally, dict[str, Any] | None]]:
    """Every workspace run to its end (subscriptions in parallel), and beside them the notify phase when the run
    announces its stops (it never holds them up: they are due at their own times); the merged tally and the notify
    phase's summary (None without one)."""
    run_id = context.instance_id
    groups = by_subscription([p.workspace for p in plans])
    by_ws = {p.workspace: p for p in plans}
    announce = notice is not None and notice.minutes > 0
    job = {"run_id": run_id, "kind": kind, "trace": dict(trace), "notices": announce}
    tasks = [
        context.call_sub_orchestrator(
            names.COMPUTE_SUBSCRIPTION_ORCHESTRATOR,
            {**job, "workspaces": [by_ws[ws].to_dict() for ws in group]},
            subscription_instance_id(run_id, sub, "run"),
        )
        for sub, group in groups.items()
    ]
    acting = [p.workspace for p in plans if p.to_act]
    if announce and acting:
        # Its activity never raises (a failure is its summary's `error`), so task_all never fails on its account.
        request = {"run_id": run_id, "workspaces": acting, "trace": dict(trace)}
        tasks.insert(0, context.call_activity(names.SEND_COMPUTE_NOTICES, request))
    outputs = list((yield context.task_all(tasks))) if tasks else []
    summary = outputs.pop(0) if announce and acting else None
    return merge(Tally.from_dict(output) for output in outputs), summary


def report_phase(
    context: df.DurableOrchestrationContext,
    blob_name: str | None,
    head: Mapping[str, Any],
    parts: Mapping[str, str],
    trace: Mapping[str, str],
) -> Generator[Any, Any, tuple[str | None, str | None]]:
    """The report blob assembled from the parts (none when `blob_name` is None) and the working blobs deleted:
    (`container/blob` or None, None) or (None, why it was not saved)."""
    request = {"run_id": context.instance_id, "blob_name": blob_name, "head": dict(head), "parts": dict(parts)}
    try:
        saved = yield context.call_activity_with_retry(
            names.ASSEMBLE_COMPUTE_REPORT, REPORT_RETRY, {**request, "trace": dict(trace)}
        )
    except Exception as err:  # the summary is still the output; only the report in storage is missing
        return None, f"saving the report to {blob_name} failed: {brief(err)}"
    return saved, None


def progress(phase: str, plans: Sequence[WorkspacePlan], outcomes: Mapping[str, int], key: str) -> dict[str, Any]:
    """The top orchestration's custom status: a phase and counts a person can follow (the dashboard adds the
    workspaces' own progress while they run)."""
    to_act = sum(p.to_act for p in plans)
    instances = to_act + sum(sum(p.outcomes.values()) for p in plans)
    return {
        "phase": phase,
        "instances": instances,
        key: to_act,
        "done": sum(outcomes.values()),
        **{outcome: int(outcomes.get(outcome, 0)) for outcome in OUTCOMES},
    }


def planned_outcomes(plans: Sequence[WorkspacePlan]) -> dict[str, int]:
    return dict(merge(Tally(outcomes=p.outcomes) for p in plans).outcomes)
