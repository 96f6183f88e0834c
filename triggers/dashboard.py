"""`GET /api/dashboard`: the operator's HTML page (runs, savings, schedules, scoring); `?code=` works in a browser.

Reports come from the reports container, scoring runs from the Durable client's instance list; the page itself is
rendered by shared.web.dashboard. `?run=<id>` shows an older run (`&format=json`: its whole report), `?month=YYYY-MM`
another month's savings, `?download=<container>/<name>` serves a predictions or bad-rows file.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.errors import AppError
from triggers.http import error_response, json_response

bp = df.Blueprint()

log = logging.getLogger(__name__)

SCORING_RUNS_SHOWN = 20
INSTANCE_WINDOW = timedelta(days=30)
# Scoring runs' instance ids start so (shared.scoring.events.scoring_instance_id, also with `force`).
SCORING_ID_PREFIX = "score-"


SCHEDULES_LISTING_MAX_AGE = 60.0  # seconds a listing of the instances is reused by the page (one ARM read a minute)


def schedules_overview(now: datetime) -> list[dict[str, Any]] | None:
    """The schedules with their next transitions and followers, from `GET /api/schedules`' own code path; None
    when no schedule is configured (the page says so, and nothing is listed)."""
    from shared.compute.schedules_view import dashboard_rows
    from shared.compute.schedules_view import schedules_overview as overview
    from shared.settings import COMPUTE_SCHEDULES, UNKNOWN_SCHEDULE_POLICY

    try:
        if not COMPUTE_SCHEDULES.get().strip():
            return None
        rows = overview(now, listing_max_age=SCHEDULES_LISTING_MAX_AGE)
        return dashboard_rows(rows, UNKNOWN_SCHEDULE_POLICY.get())
    except AppError as err:  # settings or ARM: the rest of the page still shows, this section says why not
        log.error("dashboard: schedules not shown: %s", err)
        return [{"name": "schedules", "timezone": "", "next_transitions": [], "instances": [], "error": str(err)}]


@bp.function_name("dashboard")
@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def show_dashboard(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        if req.params.get("download") is not None:
            return await asyncio.to_thread(_download, req.params["download"])
        return await _page(req, client)
    except AppError as err:
        return error_response(err, "GET /api/dashboard", text=True)


def _download(target: str) -> func.HttpResponse:
    from shared.web import dashboard_data, inputs  # pydantic and the page's code load on a request, not at indexing

    container, name = inputs.parse_download(target, dashboard_data.download_containers())
    file = dashboard_data.download(container, name)
    return func.HttpResponse(file.data, mimetype=file.content_type, headers={"Content-Disposition": file.disposition})


async def _page(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from shared.web import dashboard, dashboard_data, inputs

    now = datetime.now(UTC)
    month = inputs.parse_month(req.params.get("month"), default=now)
    run_id = inputs.parse_run(req.params.get("run"))
    if inputs.parse_format(req.params.get("format")) == "json":
        report = await asyncio.to_thread(dashboard_data.full_report, run_id, now=now)
        return json_response(report.data, headers={"Content-Disposition": report.disposition_as("inline")})
    loaded, statuses, schedules = await asyncio.gather(
        asyncio.to_thread(dashboard_data.load_reports, month, run_id, now=now),
        _instance_statuses(client, now),
        asyncio.to_thread(schedules_overview, now),
    )
    live_runs = {str(s.get("instanceId")) for s in statuses if s.get("name") != names.SCORING_ORCHESTRATOR}
    pending = await asyncio.to_thread(_pending, live_runs, now)
    page = dashboard.Page(
        reports=loaded.reports,
        selected=loaded.selected,
        month=month,
        savings=loaded.savings,
        scoring=[dashboard.scoring_run_from_status(s) for s in statuses if s.get("name") == names.SCORING_ORCHESTRATOR],
        schedules=schedules,
        now=now,
        live_shutdowns=[s for s in statuses if s.get("name") != names.SCORING_ORCHESTRATOR],
        notes=[*loaded.notes, *pending.notes],
        total_runs=loaded.total,
        runs_since=loaded.since,
        pending=pending.stops,
        orphaned_notices=pending.orphaned,
    )
    link = dashboard.page_link({"code": req.params.get("code", ""), "month": req.params.get("month", "")})
    return func.HttpResponse(dashboard.render_page(page, link), mimetype="text/html", charset="utf-8")


def _pending(live_runs: set[str], now: datetime) -> Any:
    """The announced stops of the running runs (a storage failure is a note; the rest of the page still shows)."""
    from shared.web.dashboard_data import PendingStops, pending_stops

    try:
        return pending_stops(live_runs, now)
    except AppError as err:
        log.error("dashboard: pending stops not shown: %s", err)
        return PendingStops([], notes=[f"the announced stops could not be read: {err}"])


async def _instance_statuses(client: df.DurableOrchestrationClient, now: datetime) -> list[dict[str, Any]]:
    """The newest scoring runs and the shutdowns running now, each with input and custom status.

    A list carries neither input nor (on every host) custom status: list, then ask for the few shown, concurrently.
    """
    # Two narrow queries rather than one list of everything: hosts answer a list in pages (the 1.x client reads
    # the first), so each query asks only for what the page shows.
    scoring, live = await asyncio.gather(
        client.get_status_by(created_time_from=now - INSTANCE_WINDOW, instance_id_prefix=SCORING_ID_PREFIX),
        client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending]
        ),
    )
    scoring = [s for s in scoring if s.name == names.SCORING_ORCHESTRATOR]
    scoring.sort(key=lambda s: s.created_time or now, reverse=True)
    # Reconcile runs (the schedules feature) show while they run too, whatever their orchestrator's exact name.
    live = [s for s in live if s.name == names.SHUTDOWN_ORCHESTRATOR or "reconcile" in (s.name or "")]
    wanted = [s.instance_id for s in scoring[:SCORING_RUNS_SHOWN] + live if s.instance_id]
    details = await asyncio.gather(*(client.get_status(i, show_input=True) for i in wanted))
    out = []
    for status in details:
        body = status.to_json()
        if isinstance(body.get("input"), str):
            try:  # some hosts hand the input over as JSON text
                body["input"] = json.loads(str(body["input"]))
            except json.JSONDecodeError:
                pass
        if body.get("name") != names.SCORING_ORCHESTRATOR:
            body["customStatus"] = await _run_progress(client, body)
        out.append(dict(body))
    return out


async def _run_progress(client: df.DurableOrchestrationClient, run: dict[str, Any]) -> Any:
    """A compute run's progress counted by its workspace orchestrations (ids derived from the run's), which act
    while the run itself waits on them."""
    from shared.compute.run_ids import workspace_instance_id
    from shared.compute.run_summary import live_progress

    run_input = run.get("input")
    workspaces = run_input.get("workspaces") if isinstance(run_input, dict) else None
    if not isinstance(workspaces, list) or not isinstance(run.get("customStatus"), dict):
        return run.get("customStatus")
    ids = [workspace_instance_id(str(run.get("instanceId")), str(ws)) for ws in workspaces]
    children = await asyncio.gather(*(client.get_status(i) for i in ids), return_exceptions=True)
    statuses = [c.custom_status for c in children if not isinstance(c, BaseException)]
    return live_progress(run["customStatus"], statuses)
