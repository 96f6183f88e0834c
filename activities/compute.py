"""Compute shutdown activities: thin adapters from JSON input to shared/compute and shared/blobs."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.settings import REPORTS_CONTAINER, Workspace
from shared.telemetry import carrier_span

bp = df.Blueprint()

log = logging.getLogger(__name__)


@bp.function_name(names.LIST_COMPUTE_INSTANCES)
@bp.activity_trigger(input_name="payload", activity=names.LIST_COMPUTE_INSTANCES)
def list_compute_instances(payload: dict[str, Any]) -> dict[str, Any]:
    """Instances of one workspace; a failed listing is a value (reported), `retryable` for 429/5xx."""
    workspace = str(payload["workspace"])
    with carrier_span(names.LIST_COMPUTE_INSTANCES, payload.get("trace"), {"workspace": workspace}):
        return _list(workspace)


def _list(workspace: str) -> dict[str, Any]:
    from shared import compute
    from shared.errors import ComputeError

    try:
        instances = compute.list_instances(Workspace.parse(workspace))
    except compute.RetryableComputeError as err:
        log.warning("listing %s failed, to be retried: %s", workspace, err)
        return {"workspace": workspace, "instances": [], "error": str(err), "retryable": True}
    except ComputeError as err:
        log.error("listing %s failed: %s", workspace, err)
        return {"workspace": workspace, "instances": [], "error": str(err), "retryable": False}
    log.info("listed %d compute instance(s) in %s", len(instances), workspace)
    return {
        "workspace": workspace,
        "instances": [i.to_dict() for i in instances],
        "error": None,
        "retryable": False,
    }


@bp.function_name(names.STOP_COMPUTE_INSTANCE)
@bp.activity_trigger(input_name="target", activity=names.STOP_COMPUTE_INSTANCE)
def stop_compute_instance(target: dict[str, Any]) -> dict[str, Any]:
    """Start the stop and return at once; raises RetryableComputeError on 429/5xx (the orchestration retries)."""
    with carrier_span(names.STOP_COMPUTE_INSTANCE, target.get("trace"), _ids(target)):
        return _stop(target)


def _ids(target: dict[str, Any]) -> dict[str, str]:
    return {"workspace": str(target["workspace"]), "compute": str(target["name"])}


def _stop(target: dict[str, Any]) -> dict[str, Any]:
    from shared import compute

    outcome = compute.begin_stop(Workspace.parse(target["workspace"]), target["name"])
    log.info("stop %s in %s: %s %s", target["name"], target["workspace"], outcome.status, outcome.message)
    return outcome.to_dict()


@bp.function_name(names.GET_COMPUTE_STATE)
@bp.activity_trigger(input_name="target", activity=names.GET_COMPUTE_STATE)
def get_compute_state(target: dict[str, Any]) -> dict[str, Any]:
    """Current state and last operation of one instance, or found=False when it no longer exists."""
    from shared import compute

    try:
        with carrier_span(names.GET_COMPUTE_STATE, target.get("trace"), _ids(target)):
            instance = compute.get_instance(Workspace.parse(target["workspace"]), target["name"])
    except compute.ComputeNotFoundError:
        return {"found": False, "state": None, "last_operation": None}
    return {"found": True, "state": instance.state, "last_operation": instance.last_operation}


@bp.function_name(names.SAVE_SHUTDOWN_REPORT)
@bp.activity_trigger(input_name="payload", activity=names.SAVE_SHUTDOWN_REPORT)
def save_shutdown_report(payload: dict[str, Any]) -> str:
    """Write the report JSON to the reports container; returns `container/blob` (a re-run overwrites it)."""
    with carrier_span(names.SAVE_SHUTDOWN_REPORT, payload.get("trace")):
        return _save(payload)


def _save(payload: dict[str, Any]) -> str:
    from shared import blobs

    container = REPORTS_CONTAINER.get()
    blob_name = str(payload["blob_name"])
    blobs.ensure_container(container)
    data = json.dumps(payload["report"], indent=2, sort_keys=False).encode("utf-8")
    blobs.upload(container, blob_name, data, content_type="application/json")
    log.info("saved shutdown report %s/%s (%d bytes)", container, blob_name, len(data))
    return f"{container}/{blob_name}"
