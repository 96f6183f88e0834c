"""The phases a compute run's top orchestration (shutdown or reconcile) shares: plan every workspace, run them,
assemble the report. Generator helpers run inline (`yield from`) in the calling orchestrator: only context calls.

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
from shared.compute.report import OUTCOMES
from shared.compute.run_ids import subscription_instance_id, subscription_of
from shared.compute.run_summary import Tally, merge
from shared.compute.workspace_plan import WorkspacePlan
from shared.compute.workspace_step import brief

REPORT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


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
) -> Generator[Any, Any, list[WorkspacePlan]]:
    """Every workspace listed and decided on (its ledger written); a WorkspacePlan each, in the given order."""
    run_id = context.instance_id
    job = {"run_id": run_id, "kind": kind, "at": at.isoformat(), "run": dict(run), "poll_seconds": poll_seconds}
    job |= {"default_after": default_after, "trace": dict(trace)}
    tasks = [
        context.call_sub_orchestrator(
            names.COMPUTE_PLAN_ORCHESTRATOR, {**job, "workspaces": group}, subscription_instance_id(run_id, sub, "plan")
        )
        for sub, group in by_subscription(workspaces).items()
    ]
    outputs = (yield context.task_all(tasks)) if tasks else []  # df's task_all([]) yields None
    plans = {p["workspace"]: WorkspacePlan.from_dict(p) for output in outputs for p in output}
    return [plans[ws] for ws in workspaces]


def execute_phase(
    context: df.DurableOrchestrationContext, *, kind: str, plans: Sequence[WorkspacePlan], trace: Mapping[str, str]
) -> Generator[Any, Any, Tally]:
    """Every workspace run to its end (subscriptions in parallel); the merged tally."""
    run_id = context.instance_id
    groups = by_subscription([p.workspace for p in plans])
    by_ws = {p.workspace: p for p in plans}
    tasks = [
        context.call_sub_orchestrator(
            names.COMPUTE_SUBSCRIPTION_ORCHESTRATOR,
            {"run_id": run_id, "kind": kind, "workspaces": [by_ws[ws].to_dict() for ws in group], "trace": dict(trace)},
            subscription_instance_id(run_id, sub, "run"),
        )
        for sub, group in groups.items()
    ]
    outputs = (yield context.task_all(tasks)) if tasks else []
    return merge(Tally.from_dict(output) for output in outputs)


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
