"""Compute run activities (shutdown and reconcile): thin adapters from JSON input to shared/compute.

Plan, step and finish one workspace on its ledger blob; the heads-up's lead time and its notify phase; assemble the
run's report from the workspaces' parts. Each returns counts, never per-instance lists (those are in blobs).
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.telemetry import carrier_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.PLAN_COMPUTE_WORKSPACE)
@bp.activity_trigger(input_name="payload", activity=names.PLAN_COMPUTE_WORKSPACE)
def plan_compute_workspace(payload: dict[str, Any]) -> dict[str, Any]:
    """List one workspace, decide per instance, write its ledger; a failed listing is a value (`retryable` for
    429/5xx, tried again by the orchestration), so one workspace cannot fail the others."""
    from shared.compute.workspace_plan import PlanRequest, plan_workspace

    request = PlanRequest.from_dict(payload)
    with carrier_span(names.PLAN_COMPUTE_WORKSPACE, request.trace, {"workspace": request.workspace}):
        return plan_workspace(request).to_dict()


@bp.function_name(names.PLAN_COMPUTE_NOTICE)
@bp.activity_trigger(input_name="payload", activity=names.PLAN_COMPUTE_NOTICE)
def plan_compute_notice(payload: dict[str, Any]) -> dict[str, Any]:
    """The heads-up's lead time of a run ({minutes, dry_run, error} in): 0 without channels, in a dry run, or with a
    malformed setting (then `error` says which; the run's stops do not wait)."""
    from shared.compute.notices import notice_plan

    minutes, dry_run, error = float(payload.get("minutes") or 0), bool(payload.get("dry_run")), payload.get("error")
    return notice_plan(minutes, dry_run, setting_error=error).to_dict()


@bp.function_name(names.SEND_COMPUTE_NOTICES)
@bp.activity_trigger(input_name="payload", activity=names.SEND_COMPUTE_NOTICES)
def send_compute_notices(payload: dict[str, Any]) -> dict[str, Any]:
    """The notify phase: one message per owner per run listing their coming stops, one signed link each; a summary
    (never raises: a channel or storage failure is reported, and the stops happen at their times)."""
    from shared.compute.run_notices import NotifyRequest, send_run_notices

    request = NotifyRequest.from_dict(payload)
    with carrier_span(names.SEND_COMPUTE_NOTICES, request.trace, {"run": request.run_id}):
        return send_run_notices(request).to_dict()


@bp.function_name(names.STEP_COMPUTE_WORKSPACE)
@bp.activity_trigger(input_name="payload", activity=names.STEP_COMPUTE_WORKSPACE)
def step_compute_workspace(payload: dict[str, Any]) -> dict[str, Any]:
    """Confirm what was sent, send what is due (paced by the subscription's shared write bucket); counts and the
    next instant a step is needed."""
    from shared.compute.workspace_step import step_workspace

    workspace, run_id = str(payload["workspace"]), str(payload["run_id"])
    with carrier_span(names.STEP_COMPUTE_WORKSPACE, payload.get("trace"), {"workspace": workspace}):
        return step_workspace(run_id, workspace, payload.get("trace")).to_dict()


@bp.function_name(names.FINISH_COMPUTE_WORKSPACE)
@bp.activity_trigger(input_name="payload", activity=names.FINISH_COMPUTE_WORKSPACE)
def finish_compute_workspace(payload: dict[str, Any]) -> dict[str, Any]:
    """The workspace's report entries with savings (its part of the report), the reconciler's progress, a tally."""
    from shared.compute.workspace_finish import FinishRequest, finish_workspace

    request = FinishRequest.from_dict(payload)
    with carrier_span(names.FINISH_COMPUTE_WORKSPACE, request.trace, {"workspace": request.workspace}):
        return finish_workspace(request).to_dict()


@bp.function_name(names.ASSEMBLE_COMPUTE_REPORT)
@bp.activity_trigger(input_name="payload", activity=names.ASSEMBLE_COMPUTE_REPORT)
def assemble_compute_report(payload: dict[str, Any]) -> str | None:
    """The report blob from the head and the parts (`container/blob`), then the run's working blobs deleted."""
    from shared.compute.report_assembly import AssembleRequest, assemble

    request = AssembleRequest.from_dict(payload)
    with carrier_span(names.ASSEMBLE_COMPUTE_REPORT, request.trace, {"blob": request.blob_name or ""}):
        return assemble(request)
