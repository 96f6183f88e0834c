"""Compute run activities (shutdown and reconcile): thin adapters from JSON input to shared/compute.

Plan, step and finish one workspace on its ledger blob; assemble the run's report from the workspaces' parts.
Each returns counts, never per-instance lists (those are in blobs).
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
