"""devhost refuses an app the Python worker would refuse, naming the function, the binding and what was expected."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.index import AppLoadError, index_app, load_app, script_file


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


# --- the app object and the script, as the Python worker finds them (azure_functions_worker/loader.py) -------------


def _script(root: Path, text: str, name: str = "function_app.py") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    return root


def _fresh(module: str = "function_app") -> None:
    # Each test writes its own function_app.py: forget the one an earlier test imported.
    sys.modules.pop(module, None)


@pytest.mark.parametrize("variable", ["app", "myApp", "durable_app"])
def test_the_one_top_level_function_app_is_found_whatever_its_name(tmp_path: Path, variable: str) -> None:
    _fresh()
    root = _script(
        tmp_path / variable,
        "import azure.durable_functions as df\nimport azure.functions as func\n"
        "bp = df.Blueprint()\n"  # a top-level blueprint is not an app: the worker counts FunctionRegister objects
        f"{variable} = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        f"@{variable}.activity_trigger(input_name='city', activity='SayHello')\n"
        "def say_hello(city: str) -> str:\n    return city\n",
    )
    try:
        index = index_app(load_app(root))
    finally:
        sys.path.remove(str(root.resolve()))
        _fresh()
    [spec] = index.functions
    assert (spec.name, spec.registered_name) == ("say_hello", "SayHello")
    assert index.durable("activityTrigger", "sayhello") is spec  # the extension compares names case-insensitively


def test_two_top_level_apps_are_refused_as_the_worker_refuses_them(tmp_path: Path) -> None:
    _fresh()
    root = _script(tmp_path, "import azure.functions as func\napp = func.FunctionApp()\nother = func.FunctionApp()\n")
    try:
        with pytest.raises(AppLoadError, match="More than one FunctionApp or other top level function app instances"):
            load_app(root)
    finally:
        sys.path.remove(str(root.resolve()))
        _fresh()


def test_a_script_without_an_app_is_refused_naming_the_script(tmp_path: Path) -> None:
    _fresh()
    root = _script(tmp_path, "import azure.functions as func\n")
    try:
        with pytest.raises(AppLoadError, match=r"Could not find top level function app instances in function_app\.py"):
            load_app(root)
    finally:
        sys.path.remove(str(root.resolve()))
        _fresh()


def test_a_v1_app_a_missing_folder_and_an_empty_folder_are_refused_before_anything_runs(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "HttpStart").mkdir(parents=True)
    (v1 / "HttpStart" / "function.json").write_text('{"bindings": []}')
    with pytest.raises(AppLoadError, match=r"holds a v1 programming model app \(HttpStart/function.json\)"):
        script_file(v1, {})
    with pytest.raises(AppLoadError, match="does not exist"):
        script_file(tmp_path / "nowhere", {})
    with pytest.raises(AppLoadError, match=r"has no function_app\.py"):
        script_file(tmp_path, {})


def test_python_script_file_name_picks_another_script(tmp_path: Path) -> None:
    _script(tmp_path, "", "main_app.py")
    assert script_file(tmp_path, {"PYTHON_SCRIPT_FILE_NAME": "main_app.py"}) == tmp_path / "main_app.py"


def test_one_registered_name_for_two_orchestrators_is_refused() -> None:
    def define(app: df.DFApp) -> None:
        @app.orchestration_trigger(context_name="context", orchestration="Same")
        def first(context: df.DurableOrchestrationContext) -> None:
            return None

        @app.orchestration_trigger(context_name="context", orchestration="same")
        def second(context: df.DurableOrchestrationContext) -> None:
            return None

    with pytest.raises(AppLoadError, match="functions first and second are both registered as orchestrationTrigger"):
        index_app(_app(define))
