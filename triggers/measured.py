"""The observer of measured savings: every 15 minutes, one listing per workspace where an instance the app stopped
has not been seen running again and nothing listed it lately (shared.compute.measured); no listing otherwise."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from shared.errors import AppError
from shared.telemetry import trigger_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name("observe_stopped_instances")
# Fixed: the observer's period is the promise "at most one listing per workspace per 15 minutes".
@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False, use_monitor=True)
async def observe_stopped_instances(timer: func.TimerRequest, context: func.Context) -> None:
    from shared.compute.measured import observe_due

    with trigger_span("observe_stopped_instances", context):
        try:
            observed = await asyncio.to_thread(observe_due, datetime.now(UTC))
        except AppError as err:  # settings or storage: measured savings wait for the next quarter hour
            log.error("stopped instances not observed: %s", err)
            return
        if observed:
            log.info("stopped instances observed: %s", observed)
