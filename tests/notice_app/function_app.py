"""A test app: the real heads-up link (triggers.notices) beside a small stand-in of the run's workspace orchestration.

Until the run (issues 19/20) calls the heads-up, this orchestration plays its part, with the same instance id
(`{run}:ws:{ws12}`) and through the same functions of shared/: it sends the heads-up (notices.send_notices), then
loops { take_due (postponements.take_due): "stop" the due instances (recorded in its output) ; wait for the next
due time raced with the external event `notice` }, and spends the remaining links at the end. Nothing is mocked:
Azurite holds the records, devhost runs the orchestration on the Durable engine, the link's POST raises the event
through the Durable client binding.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.compute import notices, postponements
from shared.compute.run_ids import workspace_instance_id
from triggers import notices as notice_trigger

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(notice_trigger.bp)


@app.route(route="test/notice-run", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_notice_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = json.loads(req.get_body())
    instance_id = workspace_instance_id(body["run_id"], body["workspace"])
    await client.start_new("notice_test_orchestrator", instance_id, body)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@app.orchestration_trigger(context_name="context", orchestration="notice_test_orchestrator")
def notice_test_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run: dict[str, Any] = context.get_input()
    sent = yield context.call_activity("send_test_notices", run)
    stopped: list[dict[str, str]] = []
    events = 0
    pending = {s["name"]: s["stop_at"] for s in run["stops"]}
    while pending:
        step = yield context.call_activity("take_due_stops", {**run, "pending": pending})
        for name in step["due"]:
            stopped.append({"name": name, "at": context.current_utc_datetime.isoformat()})
            pending.pop(name)
        if not pending:
            break
        timer = context.create_timer(datetime.fromisoformat(step["next_due"]))
        event = context.wait_for_external_event(names.NOTICE_EVENT)
        winner = yield context.task_any([timer, event])
        if winner == event:
            events += 1
            timer.cancel()
    yield context.call_activity("spend_test_links", run)
    return {"sent": sent, "stopped": stopped, "events": events}


@app.activity_trigger(input_name="run", activity="send_test_notices")
def send_test_notices(run: dict[str, Any]) -> dict[str, Any]:
    stops = [notices.PlannedStop.from_dict({"workspace": run["workspace"], **s}) for s in run["stops"]]
    return notices.send_notices(run["run_id"], stops, datetime.now(UTC), backoff=0.2).to_dict()


@app.activity_trigger(input_name="step", activity="take_due_stops")
def take_due_stops(step: dict[str, Any]) -> dict[str, Any]:
    planned = {name: postponements.parse_time(at) for name, at in step["pending"].items()}
    now = datetime.now(UTC) + timedelta(milliseconds=50)  # a timer may fire a hair early
    decision = postponements.take_due(step["run_id"], step["workspace"], planned, now)  # type: ignore[arg-type]
    next_due = decision.next_due
    return {"due": list(decision.due), "next_due": next_due.isoformat() if next_due else None}


@app.activity_trigger(input_name="run", activity="spend_test_links")
def spend_test_links(run: dict[str, Any]) -> None:
    postponements.mark_spent(run["run_id"], run["workspace"], [s["name"] for s in run["stops"]])
