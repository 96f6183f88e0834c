"""Starters of batch scoring: the Event Grid `BlobCreated` trigger and `POST /api/scoring` for a stored blob.

Both start `scoring_orchestrator` under an id derived from the blob version, so a redelivered event or a repeated
request finds the run that exists instead of starting another; a Failed or Terminated run may be started again.
`force` starts another run of the version that supersedes the runs before it: their predictions never stay over
its own (the commit step settles it; see shared/scoring/commit.py, commit_predictions).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.errors import AppError, InputError
from shared.scoring.events import (
    account_of,
    foreign_reason,
    ignore_reason,
    parse_blob_created,
    request_for,
    scoring_instance_id,
)
from shared.scoring.payloads import ScoringRequest, ScoringRun
from shared.settings import SCORING_INPUT_CONTAINER, SCORING_PARALLEL_CHUNKS, SCORING_WAVE_SIZE
from shared.telemetry import current_trace_carrier, trigger_span
from triggers.http import error_response

bp = df.Blueprint()

log = logging.getLogger(__name__)

RESTARTABLE = {"Failed", "Terminated"}


def _run_input(request: ScoringRequest) -> dict[str, Any]:
    # The trace context travels in the input: every activity's span joins the trigger's trace.
    run = ScoringRun(
        request=request,
        parallel=SCORING_PARALLEL_CHUNKS.get(),
        wave_size=SCORING_WAVE_SIZE.get(),
        trace=current_trace_carrier(),
    )
    return run.to_dict()


def _data_account() -> str:
    """The configured data account (DATA_STORAGE): the only account whose blobs are scored and named in run ids."""
    from shared.blobs import blob_service_client

    return account_of(blob_service_client().url)


async def _existing_status(client: df.DurableOrchestrationClient, instance_id: str) -> str | None:
    status = await client.get_status(instance_id)
    runtime = getattr(status, "runtime_status", None)
    return getattr(runtime, "value", None) if runtime is not None else None


async def _start_once(client: df.DurableOrchestrationClient, instance_id: str, run_input: dict[str, Any]) -> bool:
    """Start the run; False when a concurrent delivery of the same event started it first.

    Event Grid may deliver one event twice at the same moment: both see no instance, one start wins and the
    other is refused (409). The loser must acknowledge, not fail, or Event Grid redelivers for a day.
    """
    try:
        await client.start_new(names.SCORING_ORCHESTRATOR, instance_id, run_input)
    except Exception:  # the 1.x client raises a bare Exception carrying the host's 409 message
        existing = await _existing_status(client, instance_id)
        if existing is None or existing in RESTARTABLE:
            raise
        log.info("run %s was started concurrently (%s); nothing started", instance_id, existing)
        return False
    return True


@bp.function_name("on_blob_created")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob_created(
    event: func.EventGridEvent, client: df.DurableOrchestrationClient, context: func.Context
) -> None:
    with trigger_span("on_blob_created", context, {"event_id": event.id, "subject": event.subject}):
        await _on_blob_created(event, client)


async def _on_blob_created(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    event_type = str(getattr(event, "event_type", None) or getattr(event, "type", None) or "")
    try:
        blob = parse_blob_created(event.id, event_type, event.subject or "", event.get_json())
    except InputError as err:
        # A malformed event will not improve on redelivery: log it and acknowledge.
        log.error("Event Grid event ignored: %s", err)
        return
    if blob is None:
        log.info("event %s of type %s ignored: not BlobCreated", event.id, event_type)
        return
    account = _data_account()
    reason = ignore_reason(blob, SCORING_INPUT_CONTAINER.get()) or foreign_reason(blob, account)
    if reason:
        log.info("event %s for %s/%s ignored: %s", event.id, blob.container, blob.name, reason)
        return
    instance_id = scoring_instance_id(account, blob.container, blob.name, blob.etag)
    existing = await _existing_status(client, instance_id)
    if existing is not None and existing not in RESTARTABLE:
        log.info(
            "event %s for %s/%s (eTag %s): run %s already exists (%s); nothing started",
            event.id,
            blob.container,
            blob.name,
            blob.etag,
            instance_id,
            existing,
        )
        return
    if not await _start_once(client, instance_id, _run_input(request_for(blob, account))):
        return
    log.info("event %s: scoring %s/%s (eTag %s) as %s", event.id, blob.container, blob.name, blob.etag, instance_id)


@bp.function_name("start_scoring")
@bp.route(route="scoring", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def start_scoring(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, context: func.Context
) -> func.HttpResponse:
    with trigger_span("start_scoring", context):
        return await _start_scoring(req, client)


async def _start_scoring(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from shared.blobs import blob_info
    from shared.web.inputs import parse_scoring_body

    try:
        body = parse_scoring_body(req.get_body(), SCORING_INPUT_CONTAINER.get())
        info = blob_info(body.container, body.name)
    except AppError as err:
        return error_response(err, "POST /api/scoring")
    account = _data_account()
    etag = info.etag.strip('"')
    instance_id = scoring_instance_id(account, body.container, body.name, etag)
    if body.force:
        # A forced run is a new run of the same version (e.g. after a new model): its own id and blocks.
        instance_id = f"{instance_id}-{uuid.uuid4().hex[:12]}"
    elif (existing := await _existing_status(client, instance_id)) is not None and existing not in RESTARTABLE:
        log.info(
            "scoring of %s/%s (eTag %s) already exists as %s (%s)",
            body.container,
            body.name,
            etag,
            instance_id,
            existing,
        )
        response: func.HttpResponse = client.create_check_status_response(req, instance_id)
        return response
    request = ScoringRequest(
        account=account,
        container=body.container,
        name=body.name,
        etag=etag,
        size=info.size,
        force=body.force,
        # Force supersedes: of the runs of this version, the latest forced request's predictions stay (the commit
        # step compares this stamp; see shared/scoring/commit.py, commit_predictions).
        requested=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if body.force else "",
    )
    if await _start_once(client, instance_id, _run_input(request)):
        log.info("scoring %s/%s (eTag %s) started as %s", body.container, body.name, etag, instance_id)
    started: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return started
