"""A Durable Functions app written the way Microsoft's samples are, for testing devhost (not part of the product).

Its shapes come from Azure/azure-functions-durable-python samples-v2 (function_chaining, orchestration_versioning:
`myApp = df.DFApp(...)`, an `orchestrators/{functionName}` starter, `start_new(version=...)`) and from the Durable
extension's e2e Python app, test/e2e/Apps/BasicPython (hello_cities.py: `orchestration="HelloCities"`;
large_output_orchestrator.py; activity_error_handling.py; entity_error_handling.py in a blueprint).
"""

import json
import logging
import os

import azure.durable_functions as df
import azure.functions as func
from entities import bp as entities_bp

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)  # noqa: N816 (the samples-v2 name)
myApp.register_blueprint(entities_bp)


class InvalidOperationException(Exception):  # the e2e app's custom_exception_types.py
    pass


@myApp.route(route="orchestrators/{functionName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    function_name = req.route_params.get("functionName")
    version = req.params.get("version")
    body = req.get_body()
    client_input = json.loads(body) if body else None
    if version is not None:
        instance_id = await client.start_new(function_name, None, client_input, version=version)
    else:
        instance_id = await client.start_new(function_name, None, client_input)
    logging.info("Started orchestration with ID = '%s'.", instance_id)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


# --- named orchestrations and activities (BasicPython hello_cities.py) -------------------------------------------


@myApp.orchestration_trigger(context_name="context", orchestration="HelloCities")
def hello_cities(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity("SayHello", "Tokyo")
    result2 = yield context.call_activity("SayHello", "Seattle")
    result3 = yield context.call_activity("SayHello", "London")
    return [result1, result2, result3]


@myApp.orchestration_trigger(context_name="context", orchestration="CallsTheFunctionName")
def calls_the_function_name(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("say_hello", "Tokyo"))


@myApp.activity_trigger(input_name="city", activity="SayHello")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


# --- a large output (BasicPython large_output_orchestrator.py) -----------------------------------------------------


@myApp.orchestration_trigger(context_name="context", orchestration="LargeOutputOrchestrator")
def large_output_orchestrator(context: df.DurableOrchestrationContext):
    size_in_kb = context.get_input()
    outputs = []
    outputs.append((yield context.call_activity("SayHello", "Tokyo")))
    outputs.append("A" * (size_in_kb * 1024))
    return outputs


# --- failures (BasicPython activity_error_handling.py) ---------------------------------------------------------------


@myApp.orchestration_trigger(context_name="context", orchestration="RethrowActivityException")
def rethrow_activity_exception(context: df.DurableOrchestrationContext):
    yield context.call_activity("raise_exception", context.instance_id)


@myApp.orchestration_trigger(context_name="context", orchestration="CatchActivityException")
def catch_activity_exception(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("raise_exception", context.instance_id)
    except Exception as e:
        return f"Caught exception: {e}"
    return None


@myApp.activity_trigger(input_name="instance")
def raise_exception(instance: str) -> str:
    raise InvalidOperationException("This activity failed")


# --- versioning (samples-v2 orchestration_versioning; the e2e VersioningTests' orchestrators) ----------------------


@myApp.orchestration_trigger(context_name="context", orchestration="OrchestrationVersion")
def orchestration_version(context: df.DurableOrchestrationContext):
    yield context.call_activity("SayHello", "version")
    return f"Version: '{context.version}'"


@myApp.orchestration_trigger(context_name="context", orchestration="OrchestrationSubVersion")
def orchestration_sub_version(context: df.DurableOrchestrationContext):
    sub_version = context.get_input()
    if sub_version is None:
        sub_result = yield context.call_sub_orchestrator("OrchestrationVersion")
    else:
        sub_result = yield context.call_sub_orchestrator("OrchestrationVersion", version=sub_version)
    return f"Parent Version: '{context.version}' | Sub {sub_result}"


# --- a timer with the default useMonitor (true), to see a missed occurrence run at start -------------------------


@myApp.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def new_year(timer: func.TimerRequest) -> None:
    with open(os.environ["TIMER_RUNS_FILE"], "a", encoding="utf-8") as runs:
        runs.write(json.dumps({"past_due": timer.past_due, "status": getattr(timer, "schedule_status", None)}) + "\n")
