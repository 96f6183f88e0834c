"""Schedules activities: the reconciler's persisted last evaluated instant (a small blob in the reports container)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.compute.reconcile import STATE_BLOB
from shared.settings import REPORTS_CONTAINER
from shared.telemetry import carrier_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.LOAD_RECONCILE_STATE)
@bp.activity_trigger(input_name="payload", activity=names.LOAD_RECONCILE_STATE)
def load_reconcile_state(payload: dict[str, Any]) -> dict[str, Any]:
    """`{"last_evaluated": ISO 8601 | None}`: where the next reconcile's window begins."""
    with carrier_span(names.LOAD_RECONCILE_STATE, payload.get("trace")):
        return _load()


def _load() -> dict[str, Any]:
    from shared import blobs

    container = REPORTS_CONTAINER.get()
    info = blobs.find_blob(container, STATE_BLOB)
    if info is None:
        return {"last_evaluated": None}
    try:
        data = json.loads(blobs.read_range(container, STATE_BLOB, 0, info.size))
        last = str(data["last_evaluated"])
        datetime.fromisoformat(last)
    except (ValueError, KeyError, TypeError) as err:
        # A damaged state blob must not stop the reconciler: it then looks back one tick, as on a first run.
        log.error("reconcile state %s/%s is unreadable (%s); starting from now", container, STATE_BLOB, err)
        return {"last_evaluated": None}
    return {"last_evaluated": last}


@bp.function_name(names.SAVE_RECONCILE_STATE)
@bp.activity_trigger(input_name="payload", activity=names.SAVE_RECONCILE_STATE)
def save_reconcile_state(payload: dict[str, Any]) -> bool:
    """Persist the last evaluated instant, unless a later one is already there (overlapping runs)."""
    with carrier_span(names.SAVE_RECONCILE_STATE, payload.get("trace")):
        return _save(str(payload["last_evaluated"]))


def _save(last_evaluated: str) -> bool:
    from shared import blobs

    current = _load().get("last_evaluated")
    if current is not None and datetime.fromisoformat(current) >= datetime.fromisoformat(last_evaluated):
        return False
    container = REPORTS_CONTAINER.get()
    blobs.ensure_container(container)
    body = json.dumps({"last_evaluated": last_evaluated}).encode("utf-8")
    blobs.upload(container, STATE_BLOB, body, content_type="application/json")
    return True


@bp.function_name(names.PRICE_COMPUTE_SIZES)
@bp.activity_trigger(input_name="payload", activity=names.PRICE_COMPUTE_SIZES)
def price_compute_sizes(payload: dict[str, Any]) -> dict[str, Any]:
    """Hourly price per VM size (`PRICE_OVERRIDES`, else the retail API, cached), or why there is none."""
    with carrier_span(names.PRICE_COMPUTE_SIZES, payload.get("trace")):
        return _prices([str(s) for s in payload["sizes"]])


def _prices(sizes: list[str]) -> dict[str, Any]:
    from shared.compute.prices import prices
    from shared.errors import SettingsError

    try:
        found = prices(sizes)
    except SettingsError as err:  # a malformed PRICE_OVERRIDES: the report says so, the run goes on
        log.error("no prices: %s", err)
        return {"prices": dict.fromkeys(sizes, str(err)), "error": str(err)}  # each instance says why
    return {"prices": {size: p if isinstance(p, str) else p.to_dict() for size, p in found.items()}, "error": None}
