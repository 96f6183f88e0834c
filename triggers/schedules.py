"""Schedules: the reconciler's minute timer, `GET /api/schedules`, `POST /api/schedules/preview` and
`POST /api/reconcile` (202 + Durable status URLs)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.compute.reconcile import ReconcileRun, minute_instance_id
from shared.errors import AppError
from shared.settings import COMPUTE_SCHEDULES, RECONCILE_TIMER, ShutdownSettings
from shared.telemetry import current_trace_carrier, trigger_span
from triggers.http import error_response, json_response

bp = df.Blueprint()

log = logging.getLogger(__name__)


def _json(body: object, status: int = 200) -> func.HttpResponse:
    # Indented: these answers are read by people at a terminal (curl), as the README shows them.
    return json_response(body, status, indent=1)


def _run(dry_run: bool, trigger: str) -> ReconcileRun:
    settings = ShutdownSettings.from_env()
    return ReconcileRun(
        workspaces=tuple(w.key for w in settings.workspaces),
        schedule_tag=settings.schedule_tag,
        dry_run=dry_run,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.stop_timeout_seconds,
        trigger=trigger,
        trace=current_trace_carrier(),
        notice_minutes=settings.notice_minutes,
        notice_error=settings.notice_error,
    )


@bp.function_name("reconcile_schedules")
# Every minute, fixed: schedules have minute boundaries and are promised within a minute (a setting-named
# schedule would have to be present in every deployment's settings, or the host refuses to start).
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def reconcile_schedules(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> None:
    with trigger_span("reconcile_schedules", context):
        if not RECONCILE_TIMER.get() or not COMPUTE_SCHEDULES.get().strip():
            return  # off, or no schedule configured: no orchestration history every minute
        instance_id = minute_instance_id(datetime.now(UTC))
        try:
            await client.start_new(names.RECONCILE_ORCHESTRATOR, instance_id, _run(False, "timer").to_dict())
        except Exception as err:  # this minute's run exists already (a second firing): nothing to do
            log.warning("reconcile %s not started: %s", instance_id, err)
            return
        log.info("reconcile started: %s (past due: %s)", instance_id, timer.past_due)


@bp.function_name("list_schedules")
@bp.route(route="schedules", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_schedules(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.compute.schedules_view import schedules_overview

    with trigger_span("list_schedules", context):
        try:
            return _json(schedules_overview(datetime.now(UTC)))
        except AppError as err:
            return error_response(err, "GET /api/schedules")


@bp.function_name("preview_schedules")
@bp.route(route="schedules/preview", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def preview_schedules(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.compute.schedules_view import preview
    from shared.web.inputs import parse_preview_body

    with trigger_span("preview_schedules", context):
        try:
            at = parse_preview_body(req.get_body())
            return _json(preview(at))
        except AppError as err:
            return error_response(err, "POST /api/schedules/preview")


@bp.function_name("start_reconcile")
@bp.route(route="reconcile", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def start_reconcile(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> func.HttpResponse:
    from shared.web.inputs import parse_reconcile_body

    with trigger_span("start_reconcile", context):
        try:
            run = _run(parse_reconcile_body(req.get_body()), "http")
        except AppError as err:
            return error_response(err, "POST /api/reconcile")
        instance_id = await client.start_new(names.RECONCILE_ORCHESTRATOR, None, run.to_dict())
        log.info("reconcile started: %s (dry_run=%s)", instance_id, run.dry_run)
        response: func.HttpResponse = client.create_check_status_response(req, instance_id)
        return response


@bp.function_name("month_savings")
@bp.route(route="savings", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def month_savings(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.compute.savings_month import month_savings as sum_month
    from shared.web.inputs import parse_month

    with trigger_span("month_savings", context):
        try:
            return _json(sum_month(parse_month(req.params.get("month"))).to_dict())
        except AppError as err:
            return error_response(err, "GET /api/savings")
