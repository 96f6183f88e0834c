"""`GET|POST /api/notices/{token}`: the heads-up's link. Anonymous on purpose: the HMAC-signed token is the credential
(links travel by mail and chat, so no function key may be in them). The page and its rules are in
shared.web.notice_page; after a change this wakes the workspace's orchestration with the event `notice`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from shared.errors import AppError
from shared.names import NOTICE_EVENT
from shared.telemetry import trigger_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name("notice_link")
@bp.route(route="notices/{token}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def notice_link(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> func.HttpResponse:
    from shared.web import notice_page

    with trigger_span("notice_link", context):
        token, now = req.route_params.get("token", ""), datetime.now(UTC)
        try:
            run = await asyncio.to_thread(notice_page.run_of, token, now)
            gone = run is not None and await _gone(client, run)
            page = await asyncio.to_thread(notice_page.answer, req.method, token, req.get_body(), now, run_gone=gone)
        except AppError as err:  # settings or storage: nothing was changed, the visitor may try again
            log.error("notice link not answered: %s", err)
            page = notice_page.refusal(503, "the app cannot answer this link right now; please try again shortly")
        if page.wake:
            await _wake(client, page.wake)
        return func.HttpResponse(
            page.html, status_code=page.status, mimetype="text/html", charset="utf-8", headers=dict(page.headers)
        )


async def _gone(client: df.DurableOrchestrationClient, run_id: str) -> bool:
    """Whether the link's run no longer runs: ended, or unknown to the task hub (lost with a host that keeps its
    orchestrations in memory, as devhost does). When the question cannot be answered, the run is taken as running."""
    try:
        status = await client.get_status(run_id)
    except Exception as err:  # df raises plain Exceptions for unexpected answers
        log.warning("status of run %s not read (the link is answered as if it runs): %s", run_id, err)
        return False
    runtime = getattr(status.runtime_status, "value", status.runtime_status)
    return runtime is None or runtime in ("Completed", "Failed", "Terminated", "Canceled")


async def _wake(client: df.DurableOrchestrationClient, instance_id: str) -> None:
    """Tell the workspace's orchestration to re-read its notice record now. The choice is stored already: an
    orchestration that is gone or not started yet reads it at its next wake-up, so a failure here loses nothing."""
    try:
        await client.raise_event(instance_id, NOTICE_EVENT, None)
    except Exception as err:  # df raises plain Exceptions for 404/410
        log.warning("notice event not delivered to %s (read at its next wake-up): %s", instance_id, err)
