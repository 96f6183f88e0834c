"""The fan-out of a compute run (shutdown or reconcile): per subscription, then per workspace.

- `compute_plan_orchestrator` (`{run}:plan:{sub8}`): plans every workspace of one subscription (listing retried on
  durable timers, `LIST_ROUNDS` in all); returns a few counts per workspace.
- `compute_subscription_orchestrator` (`{run}:run:{sub8}`): runs one workspace orchestration per workspace, in
  parallel (each subscription has its own ARM budget; its workspaces share its write bucket); merges their tallies.
- `compute_workspace_orchestrator` (`{run}:ws:{ws12}`): steps the workspace's ledger until every instance has an
  outcome, waiting on durable timers in between, then finishes it (report part, savings, reconcile progress).

Every per-instance record is in blobs, written by activities: a history holds O(steps) small events whatever the
number of instances. Deterministic generators: only context calls; no I/O, clock or settings.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.compute.run_ids import workspace_instance_id
from shared.compute.run_summary import Tally, merge
from shared.compute.workspace_plan import WorkspacePlan
from shared.compute.workspace_step import StepAnswer, brief

bp = df.Blueprint()

log = logging.getLogger(__name__)

LIST_ROUNDS = 3  # listing attempts per workspace; the SDK's own retries happen inside each
PLAN_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2_000, max_number_of_attempts=3)
# A step that lost a race on its ledger (or met a storage hiccup) is run again from what is stored.
STEP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1_000, max_number_of_attempts=5)
FINISH_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def in_context_time(context: df.DurableOrchestrationContext, moment: datetime) -> datetime:
    """`moment` as the context's own clock is (hosts differ: aware on the Functions host, naive UTC elsewhere)."""
    aware = _utc(moment)
    return aware if context.current_utc_datetime.tzinfo is not None else aware.replace(tzinfo=None)


# --- plan: one per subscription ---------------------------------------------------------------------------------


@bp.function_name(names.COMPUTE_PLAN_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.COMPUTE_PLAN_ORCHESTRATOR)
def compute_plan_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Input: {run_id, kind, at, run, workspaces, poll_seconds, default_after, trace}; output: a WorkspacePlan each."""
    job = dict(context.get_input())
    plans: dict[str, WorkspacePlan] = {}
    pending = list(job["workspaces"])
    for attempt in range(1, LIST_ROUNDS + 1):
        final = attempt == LIST_ROUNDS
        outputs = yield context.task_all([_plan(context, job, ws, final, plans.get(ws)) for ws in pending])
        for ws, output in zip(pending, outputs, strict=True):
            plans[ws] = WorkspacePlan.from_dict(output)
        pending = [ws for ws in pending if plans[ws].retryable]
        if not pending or final:
            break
        wait = int(job.get("poll_seconds", 30)) * attempt
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
    return [plans[ws].to_dict() for ws in job["workspaces"]]


def _plan(
    context: df.DurableOrchestrationContext, job: dict[str, Any], workspace: str, final: bool, before: Any
) -> Any:
    request = {
        "run_id": job["run_id"],
        "kind": job["kind"],
        "workspace": workspace,
        "at": job["at"],
        "run": job["run"],
        "final": final,
        "default_after": job.get("default_after"),
        "requests_before": before.arm_requests if before is not None else {},
        "trace": job.get("trace") or {},
        "notice_minutes": job.get("notice_minutes") or 0.0,
    }
    return context.call_activity_with_retry(names.PLAN_COMPUTE_WORKSPACE, PLAN_RETRY, request)


# --- run: one per subscription ----------------------------------------------------------------------------------


@bp.function_name(names.COMPUTE_SUBSCRIPTION_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.COMPUTE_SUBSCRIPTION_ORCHESTRATOR)
def compute_subscription_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Input: {run_id, kind, workspaces: [WorkspacePlan], trace, notices}; output: the merged Tally of its
    workspaces."""
    job = dict(context.get_input())
    run_id = job["run_id"]
    each = {"run_id": run_id, "kind": job["kind"], "trace": job.get("trace") or {}, "notices": bool(job.get("notices"))}
    children = [
        context.call_sub_orchestrator(
            names.COMPUTE_WORKSPACE_ORCHESTRATOR,
            {**each, "plan": plan},
            workspace_instance_id(run_id, plan["workspace"]),
        )
        for plan in job["workspaces"]
    ]
    outputs = (yield context.task_all(children)) if children else []
    return merge(Tally.from_dict(output) for output in outputs).to_dict()


# --- one workspace ------------------------------------------------------------------------------------------------


@bp.function_name(names.COMPUTE_WORKSPACE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=names.COMPUTE_WORKSPACE_ORCHESTRATOR)
def compute_workspace_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Input: {run_id, kind, plan: WorkspacePlan, trace, notices}; output: the workspace's Tally.

    Its custom status shows the workspace's progress (instances, done, per outcome), which the dashboard sums. With
    `notices` (the run announces its stops), its waits are raced with the external event `notice` that a heads-up
    link raises after an owner's choice: one event per click on this workspace's orchestration, never per instance
    of the fleet on one orchestration."""
    job = dict(context.get_input())
    plan = WorkspacePlan.from_dict(job["plan"])
    context.set_custom_status(_status("acting", plan.instances, plan.to_act, plan.outcomes, plan.workspace))
    aborted = (yield from _advance(context, job, plan)) if plan.to_act else None
    request = {"run_id": job["run_id"], "workspace": plan.workspace, "aborted": aborted, "trace": job.get("trace")}
    output = yield context.call_activity_with_retry(names.FINISH_COMPUTE_WORKSPACE, FINISH_RETRY, request)
    tally = Tally.from_dict(output)
    context.set_custom_status(_status("done", plan.instances, plan.to_act, tally.outcomes, plan.workspace))
    return tally.to_dict()


def _status(phase: str, instances: int, to_act: int, outcomes: dict[str, int], workspace: str) -> dict[str, Any]:
    return {
        "phase": phase,
        "workspace": workspace,
        "instances": instances,
        "to_act": to_act,
        "done": sum(outcomes.values()),
        **outcomes,
    }


def _advance(
    context: df.DurableOrchestrationContext, job: dict[str, Any], plan: WorkspacePlan
) -> Generator[Any, Any, str | None]:
    """Step the ledger until nothing is open; None, or why the steps ended early (a step failed every retry)."""
    request = {"run_id": job["run_id"], "workspace": plan.workspace, "trace": job.get("trace") or {}}
    waiter = _Waiter(context, bool(job.get("notices")))
    while True:
        try:
            output = yield context.call_activity_with_retry(names.STEP_COMPUTE_WORKSPACE, STEP_RETRY, request)
        except Exception as err:  # the finish reports every instance left without an outcome, with this reason
            if not context.is_replaying:
                log.error("workspace %s of run %s: a step failed: %s", plan.workspace, job["run_id"], err)
            return f"a step failed: {brief(err)}"
        answer = StepAnswer.from_dict(output)
        context.set_custom_status({"phase": "acting", **answer.progress})
        if answer.wake_at is None:
            return None
        yield from waiter.wait_until(datetime.fromisoformat(answer.wake_at))


class _Waiter:
    """The workspace's waits between steps: a durable timer until the step's `wake_at`, raced (when the run
    announces its stops) with the external event `notice`. The event carries nothing the step trusts: the step
    re-reads the notice record, so a lost event costs latency only and a forged one costs a step.

    One event task is kept across waits until an event completes it: df hands an event to the newest task waiting
    for its name, so a fresh task per wait would leave old ones to swallow events raised while a step runs."""

    def __init__(self, context: df.DurableOrchestrationContext, events: bool) -> None:
        self.context, self.events = context, events
        self.event: Any = None

    def wait_until(self, moment: datetime) -> Generator[Any, Any, None]:
        context = self.context
        if _utc(moment) <= _utc(context.current_utc_datetime):
            return
        timer = context.create_timer(in_context_time(context, moment))
        if not self.events:
            yield timer
            return
        if self.event is None:
            self.event = context.wait_for_external_event(names.NOTICE_EVENT)
        winner = yield context.task_any([timer, self.event])
        if winner == self.event:
            timer.cancel()
            self.event = None
