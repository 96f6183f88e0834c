"""Schedules activities: the opening of a reconcile run (claims on each workspace's progress blob)."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.telemetry import carrier_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.OPEN_RECONCILE)
@bp.activity_trigger(input_name="payload", activity=names.OPEN_RECONCILE)
def open_reconcile(payload: dict[str, Any]) -> dict[str, Any]:
    """Claim the windows that need work in every workspace (conditional writes); which workspaces to plan, or
    that the run is quiet (no ARM request at all)."""
    from shared.compute.reconcile_open import OpenRequest, open_run

    request = OpenRequest.from_dict(payload)
    with carrier_span(names.OPEN_RECONCILE, request.trace):
        return open_run(request).to_dict()
