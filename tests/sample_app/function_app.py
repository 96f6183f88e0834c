"""A small app with one function of each trigger kind, used to test devhost independently of the product."""

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

STARTABLE = {
    "hello_orchestrator",
    "fanout_orchestrator",
    "failing_orchestrator",
    "retry_orchestrator",
    "event_orchestrator",
    "parent_orchestrator",
    "fail_fast_orchestrator",
    "retry_timing_orchestrator",
    "race_orchestrator",
    "caught_orchestrator",
    "empty_fanout_orchestrator",
    "counter_orchestrator",
    "long_parent_orchestrator",
}


def _state_dir() -> Path:
    path = Path(os.environ["SAMPLE_STATE_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _append(name: str, record: dict[str, Any]) -> None:
    with (_state_dir() / name).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


@app.route(route="start/{orchestrator}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    name = req.route_params["orchestrator"]
    if name not in STARTABLE:
        return func.HttpResponse(json.dumps({"error": f"unknown orchestrator {name}"}), status_code=400)
    body = req.get_body()
    instance_id = await client.start_new(name, req.route_params.get("instance_id"), json.loads(body) if body else None)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@app.route(route="echo/{name}/{part?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "method": req.method,
                "url": req.url,
                "params": dict(req.params),
                "route": dict(req.route_params),
                "body": req.get_body().decode(),
                "header": req.headers.get("x-sample"),
                "invocation_id": context.invocation_id,
                "traceparent": context.trace_context.trace_parent,
            }
        ),
        mimetype="application/json",
        headers={"X-Echo": "yes"},
        status_code=201,
    )


@app.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.route(route="explode", methods=["GET"])
def explode_http(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internal detail that must not reach the caller")


@app.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[str]]:
    names = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for position, name in enumerate(names):
        results.append((yield context.call_activity("say_hello", name)))
        context.set_custom_status({"done": position + 1, "total": len(names)})
    return results


@app.orchestration_trigger(context_name="context")
def fanout_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, int]]:
    count = int(context.get_input()["count"])
    results = yield context.task_all([context.call_activity("square", n) for n in range(count)])
    return {"count": len(results), "sum": sum(results)}


@app.orchestration_trigger(context_name="context")
def failing_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("explode", "kaboom-42")


@app.orchestration_trigger(context_name="context")
def retry_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id, "fail_times": 2}))


@app.orchestration_trigger(context_name="context")
def event_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    from datetime import timedelta

    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    approval = yield context.wait_for_external_event("approve")
    return {"approved_by": approval, "instance": context.instance_id}


@app.orchestration_trigger(context_name="context")
def parent_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    child = yield context.call_sub_orchestrator("hello_orchestrator", ["Child"])
    info = yield context.call_sub_orchestrator("child_info_orchestrator")
    return {"child": child, "uuids_differ": context.new_uuid() != context.new_uuid(), "info": info}


@app.orchestration_trigger(context_name="context")
def child_info_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("say_hello", "child")
    return {"parent": context.parent_instance_id, "id": context.instance_id}


@app.orchestration_trigger(context_name="context")
def long_parent_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    child = yield context.call_sub_orchestrator("long_child_orchestrator", context.get_input())
    return {"child": child}


@app.orchestration_trigger(context_name="context")
def long_child_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Runs `seconds` on a durable timer: longer than the 30 s durabletask's stock sub-orchestration watcher waits."""
    from datetime import timedelta

    seconds = float(context.get_input()["seconds"])
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return {"slept": seconds}


@app.orchestration_trigger(context_name="context")
def counter_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    count = int(context.get_input() or 0)
    greeting = yield context.call_activity("say_hello", str(count))
    if count < 2:
        context.set_custom_status({"count": count})
        context.continue_as_new(count + 1)
        return None
    return {"count": count, "last": greeting}


@app.orchestration_trigger(context_name="context")
def fail_fast_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    key = context.instance_id
    return (
        yield context.task_all([context.call_activity("slow", {"key": key}), context.call_activity("explode", key)])
    )


@app.orchestration_trigger(context_name="context")
def retry_timing_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    started = context.current_utc_datetime
    try:
        yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id, "fail_times": 99})
    except Exception as err:
        seconds = (context.current_utc_datetime - started).total_seconds()
        return {"seconds": seconds, "error": str(err)}
    return None


@app.orchestration_trigger(context_name="context")
def race_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    slow = context.call_activity("slow", {"key": context.instance_id, "seconds": 2})
    fast = context.call_activity("say_hello", "Race")
    winner = yield context.task_any([slow, fast])
    return {"result": winner.result, "fast_won": winner is fast}


@app.orchestration_trigger(context_name="context")
def caught_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    try:
        yield context.call_activity("explode", "caught-7")
    except Exception as err:
        return {"caught": str(err)}
    return None


@app.orchestration_trigger(context_name="context")
def empty_fanout_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    results = yield context.task_all([])
    return {"results": results}


@app.activity_trigger(input_name="payload")
def slow(payload: dict[str, Any]) -> str:
    time.sleep(float(payload.get("seconds", 4)))
    _append("slow.jsonl", {"key": payload["key"], "finished": time.time()})
    return "slow"


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}!"


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    time.sleep(0.01)
    return n * n


@app.activity_trigger(input_name="detail")
def explode(detail: str) -> None:
    raise ValueError(f"activity exploded with {detail}")


@app.activity_trigger(input_name="payload")
def flaky(payload: dict[str, Any]) -> dict[str, int]:
    marker = _state_dir() / f"flaky-{payload['key']}.count"
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts <= payload["fail_times"]:
        raise RuntimeError(f"transient failure {attempts}")
    return {"attempts": attempts}


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    _append("ticks.jsonl", {"at": time.time(), "past_due": timer.past_due})


@app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    record: dict[str, Any] = {"id": event.id, "subject": event.subject, "data": event.get_json()}
    record["type"] = getattr(event, "event_type", None) or getattr(event, "type", None)
    record["schema"] = "cloudevents" if hasattr(event, "specversion") else "eventgrid"
    _append("events.jsonl", record)


# Schedules that never fire during a test: devhost logs their next occurrences at start, as the host does.
@app.timer_trigger(schedule="0 30 4 1,15 * 5", arg_name="timer")
def both_day_fields(timer: func.TimerRequest) -> None:
    _append("ticks.jsonl", {"at": time.time(), "function": "both_day_fields"})


@app.timer_trigger(schedule="0 22 * * 1-5", arg_name="timer")
def five_fields(timer: func.TimerRequest) -> None:
    _append("ticks.jsonl", {"at": time.time(), "function": "five_fields"})


@app.timer_trigger(schedule="0 0 9 * Jan,Jul Sun", arg_name="timer")
def named_fields(timer: func.TimerRequest) -> None:
    _append("ticks.jsonl", {"at": time.time(), "function": "named_fields"})


@app.timer_trigger(schedule="0 0 22 * * 7", arg_name="timer")
def seven_as_sunday(timer: func.TimerRequest) -> None:
    _append("ticks.jsonl", {"at": time.time(), "function": "seven_as_sunday"})
