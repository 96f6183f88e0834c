"""devhost refuses an app the Python worker would refuse, naming the function, the binding and what was expected."""

from __future__ import annotations

from collections.abc import Callable

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.index import AppLoadError, index_app


def _app(define: Callable[[df.DFApp], None]) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    define(app)
    return app


def params_not_in_bindings(app: df.DFApp) -> None:
    @app.route(route="x")
    def handler(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse("")


def binding_not_in_params(app: df.DFApp) -> None:
    @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
    def tick() -> None:
        return None


def unsupported_binding(app: df.DFApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def on_message(msg: func.QueueMessage) -> None:
        return None


def unsupported_input_binding(app: df.DFApp) -> None:
    @app.route(route="y")
    @app.blob_input(arg_name="blob", path="c/b.txt", connection="AzureWebJobsStorage")
    def read(req: func.HttpRequest, blob: str) -> func.HttpResponse:
        return func.HttpResponse(blob)


def missing_trigger(app: df.DFApp) -> None:
    @app.function_name("lonely")
    def lonely() -> None:
        return None


def duplicate_names(app: df.DFApp) -> None:
    @app.function_name("same")
    @app.route(route="a")
    def first(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @app.function_name("same")
    @app.route(route="b")
    def second(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")


@pytest.mark.parametrize(
    ("define", "expected"),
    [
        (
            params_not_in_bindings,
            "cannot load the handler function: the following parameters are declared in Python but not in "
            "function.json: {'extra'}",
        ),
        (
            binding_not_in_params,
            "cannot load the tick function: the following parameters are declared in function.json but not in "
            "Python: {'timer'}",
        ),
        (unsupported_binding, "cannot load the on_message function: binding 'msg' has type 'queueTrigger' (in)"),
        (unsupported_input_binding, "cannot load the read function: binding 'blob' has type 'blob' (in)"),
        (missing_trigger, "Function lonely does not have a trigger. A valid function must have one and only one"),
        (duplicate_names, "Function same does not have a unique function name."),
    ],
)
def test_an_app_the_worker_would_refuse_is_refused_naming_the_problem(
    define: Callable[[df.DFApp], None], expected: str
) -> None:
    with pytest.raises(AppLoadError) as caught:
        index_app(_app(define))
    assert expected in str(caught.value)
    assert str(caught.value).startswith("Worker failed to index functions")


def test_two_triggers_are_refused_when_the_app_is_defined() -> None:
    app = df.DFApp()
    with pytest.raises(ValueError, match="A trigger was already registered to this function"):

        @app.route(route="z")
        @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
        def both(req: func.HttpRequest, timer: func.TimerRequest) -> func.HttpResponse:
            return func.HttpResponse("")

        app.get_functions()


def test_a_valid_app_indexes_every_function() -> None:
    def define(app: df.DFApp) -> None:
        @app.route(route="ok")
        def ok(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
            return func.HttpResponse("")

        @app.activity_trigger(input_name="payload")
        def work(payload: dict[str, int]) -> int:
            return 1

    index = index_app(_app(define))
    assert [spec.name for spec in index.functions] == ["ok", "work"]
