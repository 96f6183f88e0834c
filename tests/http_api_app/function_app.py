"""An app written the way Microsoft's Durable Python samples are (Azure/azure-functions-durable-python samples-v2:
function_chaining, human_interaction), used to check devhost's HTTP surfaces against what Azure answers: a generic
HTTP starter, chained activities with custom status, an orchestration waiting for an external event, a failing one,
a long timer, an Event Grid trigger starting an orchestration, and functions that show what they were handed.

Like the samples, the app is called `myApp`.
"""

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)  # noqa: N816 (the samples-v2 name)


@myApp.route(route="orchestrators/{functionName}")
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    function_name = req.route_params.get("functionName")
    body = req.get_body()
    instance_id = await client.start_new(function_name, None, json.loads(body) if body else None)
    return client.create_check_status_response(req, instance_id)


@myApp.route(route="raise/{instanceId}/{eventName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def raise_with_client(req: func.HttpRequest, client):
    """Raises an event through the Python client (raise_event), as a sample's approval function does."""
    await client.raise_event(req.route_params["instanceId"], req.route_params["eventName"], req.get_json())
    return func.HttpResponse(status_code=202)


@myApp.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """What the function was handed: the body's size and digest, and the Content-Encoding header."""
    body = req.get_body()
    answer = {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "contentEncoding": req.headers.get("Content-Encoding"),
    }
    return func.HttpResponse(json.dumps(answer), mimetype="application/json")


@myApp.route(route="setting/{name}", methods=["GET"])
def setting_length(req: func.HttpRequest) -> func.HttpResponse:
    """How long an app setting is, as the host process sees it."""
    value = os.environ.get(req.route_params["name"])
    return func.HttpResponse(json.dumps({"length": None if value is None else len(value)}), mimetype="application/json")


@myApp.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    result = []
    for city in cities:
        result.append((yield context.call_activity("say_hello", city)))
        context.set_custom_status({"greeted": len(result)})
    return result


@myApp.orchestration_trigger(context_name="context")
def approval_orchestrator(context: df.DurableOrchestrationContext):
    approval = yield context.wait_for_external_event("Approval")
    return {"value": approval, "type": type(approval).__name__}


@myApp.orchestration_trigger(context_name="context")
def failing_orchestrator(context: df.DurableOrchestrationContext):
    yield context.call_activity("fail", "boom-17")


@myApp.orchestration_trigger(context_name="context")
def fails_once_orchestrator(context: df.DurableOrchestrationContext):
    """A first step that succeeds, then one that fails on its first run only: what a rewind is for."""
    key = context.get_input()
    first = yield context.call_activity("count_calls", f"{key}-first")
    second = yield context.call_activity("fail_first_time", key)
    return {"first": first, "second": second}


@myApp.orchestration_trigger(context_name="context")
def sleepy_orchestrator(context: df.DurableOrchestrationContext):
    seconds = float(context.get_input() or 30)
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return {"slept": seconds}


@myApp.orchestration_trigger(context_name="context")
def setting_orchestrator(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("setting_length_in_worker", context.get_input()))


@myApp.orchestration_trigger(context_name="context")
def blob_orchestrator(context: df.DurableOrchestrationContext):
    """Works on a blob a while (a durable timer), then records that it finished."""
    subject = context.get_input()["subject"]
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=float(os.environ["BLOB_WORK_SECONDS"])))
    return (yield context.call_activity("record_done", subject))


@myApp.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@myApp.activity_trigger(input_name="detail")
def fail(detail: str) -> None:
    raise ValueError(f"activity failed with {detail}")


def _count(key: str) -> int:
    marker = Path(os.environ["APP_STATE_DIR"]) / f"{key}.count"
    calls = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(calls))
    return calls


@myApp.activity_trigger(input_name="key")
def count_calls(key: str) -> int:
    return _count(key)


@myApp.activity_trigger(input_name="key")
def fail_first_time(key: str) -> int:
    calls = _count(key)
    if calls == 1:
        raise RuntimeError(f"first call of {key} fails")
    return calls


@myApp.activity_trigger(input_name="name")
def setting_length_in_worker(name: str) -> dict[str, int | None]:
    value = os.environ.get(name)
    return {"length": None if value is None else len(value)}


@myApp.activity_trigger(input_name="subject")
def record_done(subject: str) -> str:
    with (Path(os.environ["APP_STATE_DIR"]) / "done.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"subject": subject}) + "\n")
    return subject


@myApp.event_grid_trigger(arg_name="event")
@myApp.durable_client_input(client_name="client")
async def on_blob(event: func.EventGridEvent, client):
    instance_id = await client.start_new("blob_orchestrator", None, {"subject": event.subject})
    with (Path(os.environ["APP_STATE_DIR"]) / "started.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": event.id, "instance": instance_id}) + "\n")
