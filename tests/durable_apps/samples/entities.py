"""Durable entities as the df docs and the e2e app's entity_error_handling.py write them, in a blueprint."""

import json

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


class InvalidOperationException(Exception):
    pass


@bp.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:  # noqa: N802 (the e2e app's entity name)
    current = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        current += context.get_input()
        context.set_result(current)
    elif operation == "reset":
        current = 0
    elif operation == "get":
        context.set_result(current)
    elif operation == "fail":
        raise InvalidOperationException("This entity failed\r\nMore information about the failure")
    context.set_state(current)


@bp.orchestration_trigger(context_name="context", orchestration="CounterOrchestration")
def counter_orchestration(context: df.DurableOrchestrationContext):
    entity_id = df.EntityId("Counter", context.get_input())
    context.signal_entity(entity_id, "add", 5)
    first = yield context.call_entity(entity_id, "add", 1)
    context.signal_entity(entity_id, "add", 10)
    second = yield context.call_entity(entity_id, "get")
    return [first, second]


@bp.orchestration_trigger(context_name="context", orchestration="ThrowEntityOrchestration")
def rethrow_entity_exception(context: df.DurableOrchestrationContext):
    yield context.call_entity(df.EntityId("Counter", "myCounter"), "fail", context.instance_id)
    return "Success"


@bp.orchestration_trigger(context_name="context", orchestration="CatchEntityOrchestration")
def catch_entity_exception(context: df.DurableOrchestrationContext):
    try:
        yield context.call_entity(df.EntityId("Counter", "myCounter"), "fail", context.instance_id)
        return "Success"
    except Exception as e:
        return str(e)


@bp.route(route="counters/{key}", methods=["GET", "POST"])
@bp.durable_client_input(client_name="client")
async def counter_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    entity_id = df.EntityId("Counter", req.route_params["key"])
    if req.method == "POST":
        body = req.get_body()
        await client.signal_entity(entity_id, req.params.get("op", "add"), json.loads(body) if body else None)
        return func.HttpResponse(status_code=202)
    state = await client.read_entity_state(entity_id)
    answer = json.dumps({"exists": state.entity_exists, "state": state.entity_state})
    return func.HttpResponse(answer, mimetype="application/json")
