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
    from shared.arm_budget import counting
    from shared.compute import arm
    from shared.errors import ComputeError

    with counting() as counts:
        try:
            instances = arm.list_instances(Workspace.parse(workspace))
        except arm.RetryableComputeError as err:
            log.warning("listing %s failed, to be retried: %s", workspace, err)
            return arm.Listing(workspace, (), str(err), True, counts.to_dict()).to_dict()
        except ComputeError as err:
            log.error("listing %s failed: %s", workspace, err)
            return arm.Listing(workspace, (), str(err), False, counts.to_dict()).to_dict()
    log.info("listed %d compute instance(s) in %s", len(instances), workspace)
    return arm.Listing(workspace, tuple(instances), None, False, counts.to_dict()).to_dict()


ACT_THREADS = 16  # POSTs of one batch in flight at once; ARM's write bucket (paced in arm_budget) is the limit


@bp.function_name(names.ACT_ON_COMPUTE_INSTANCES)
@bp.activity_trigger(input_name="batch", activity=names.ACT_ON_COMPUTE_INSTANCES)
def act_on_compute_instances(batch: dict[str, Any]) -> dict[str, Any]:
    """Send the stop/start POSTs of a batch (one subscription) and return at once, one outcome per item.

    One activity per batch rather than per instance: the writes of a subscription share one client-side copy
    of ARM's write bucket in one process (paced, no burst of 429s from several workers), and the
    orchestration's history holds one event pair per batch. A 429/5xx that outlived the SDK's retries is the
    outcome `retryable` (a value, so one instance cannot fail the batch); the orchestration re-sends it later.
    """
    with carrier_span(names.ACT_ON_COMPUTE_INSTANCES, batch.get("trace"), {"items": str(len(batch["items"]))}):
        return _act(batch["items"], batch.get("trace"))


def _act(items: list[dict[str, Any]], trace: dict[str, str] | None) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from shared.arm_budget import RequestCounts, counting
    from shared.compute import arm
    from shared.errors import ComputeError

    def one(item: dict[str, Any]) -> tuple[arm.StopOutcome, RequestCounts]:
        # A span per instance (stop_compute_instance / start_compute_instance), in the run's trace.
        ids = {"workspace": str(item["workspace"]), "compute": str(item["name"])}
        with carrier_span(f"{item['action']}_compute_instance", trace, ids), counting() as counts:
            begin = arm.begin_stop if item["action"] == "stop" else arm.begin_start
            try:
                out = begin(Workspace.parse(item["workspace"]), item["name"], state=item.get("state"))
            except arm.RetryableComputeError as err:
                out = arm.StopOutcome("retryable", item.get("state"), str(err))
            except ComputeError as err:
                out = arm.StopOutcome("failed", item.get("state"), str(err))
        log.info("%s %s in %s: %s %s", item["action"], item["name"], item["workspace"], out.status, out.message)
        return out, counts

    with ThreadPoolExecutor(min(ACT_THREADS, max(1, len(items)))) as pool:
        done = list(pool.map(one, items))
    requests = {"reads": sum(c.reads for _, c in done), "writes": sum(c.writes for _, c in done)}
    return arm.ActAnswer(tuple(out for out, _ in done), requests).to_dict()


@bp.function_name(names.READ_COMPUTE_STATES)
@bp.activity_trigger(input_name="query", activity=names.READ_COMPUTE_STATES)
def read_compute_states(query: dict[str, Any]) -> dict[str, Any]:
    """States of the named instances, read by LISTING each workspace (one request per page, whatever the number
    of instances), not one GET each. `workspaces`: {workspace: [[name, state last seen], ...]}. An instance comes
    back only when its state changed or settled (None when it is no longer listed): the result, kept in the
    orchestration's history, stays small."""
    wanted = {str(ws): [(str(n), str(seen)) for n, seen in pairs] for ws, pairs in dict(query["workspaces"]).items()}
    with carrier_span(names.READ_COMPUTE_STATES, query.get("trace"), {"workspaces": str(len(wanted))}):
        return _read_states(wanted)


def _read_states(wanted: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from shared.arm_budget import RequestCounts, counting
    from shared.compute import arm
    from shared.errors import ComputeError

    def one(workspace: str) -> tuple[dict[str, Any] | str, RequestCounts]:
        with counting() as counts:
            try:
                listed = {i.name.lower(): i for i in arm.list_instances(Workspace.parse(workspace))}
            except ComputeError as err:
                return str(err), counts
        settled: dict[str, Any] = {}
        for name, seen in wanted[workspace]:
            instance = listed.get(name.lower())
            if instance is None:
                settled[name] = None
            elif instance.state != seen or instance.state not in arm.TRANSITIONAL_STATES:
                last = instance.last_operation or {}
                settled[name] = [instance.state, last.get("operation_name"), last.get("operation_status")]
        return settled, counts

    with ThreadPoolExecutor(max(1, min(8, len(wanted)))) as pool:
        done = dict(zip(wanted, pool.map(one, wanted), strict=True))
    return arm.StatesView(
        states={ws: view for ws, (view, _) in done.items() if not isinstance(view, str)},
        errors={ws: view for ws, (view, _) in done.items() if isinstance(view, str)},
        arm_requests={
            "reads": sum(c.reads for _, c in done.values()),
            "writes": sum(c.writes for _, c in done.values()),
        },
    ).to_dict()


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
