"""Starters of the compute shutdown: the nightly timer and `POST /api/shutdown` (202 + status URLs)."""

from __future__ import annotations

import logging
from dataclasses import replace

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.compute.shutdown_run import default_run
from shared.errors import AppError
from shared.settings import ShutdownSettings
from shared.telemetry import current_trace_carrier, trigger_span
from triggers.http import error_response

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name("nightly_shutdown")
@bp.timer_trigger(arg_name="timer", schedule="%SHUTDOWN_SCHEDULE%", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def nightly_shutdown(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> None:
    with trigger_span("nightly_shutdown", context):
        run = replace(default_run(ShutdownSettings.from_env(), trigger="timer"), trace=current_trace_carrier())
        instance_id = await client.start_new(names.SHUTDOWN_ORCHESTRATOR, None, run.to_dict())
        log.info("nightly shutdown started: %s (past due: %s)", instance_id, timer.past_due)


@bp.function_name("start_shutdown")
@bp.route(route="shutdown", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def start_shutdown(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> func.HttpResponse:
    with trigger_span("start_shutdown", context):
        return await _start_shutdown(req, client)


async def _start_shutdown(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from shared.web.inputs import parse_shutdown_body

    try:
        run = parse_shutdown_body(req.get_body(), ShutdownSettings.from_env())
    except AppError as err:
        return error_response(err, "POST /api/shutdown")
    run = replace(run, trace=current_trace_carrier())
    instance_id = await client.start_new(names.SHUTDOWN_ORCHESTRATOR, None, run.to_dict())
    log.info("shutdown started: %s (workspaces %s, dry_run=%s)", instance_id, ",".join(run.workspaces), run.dry_run)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response
