"""The app's orchestrators stepped through azure-functions-durable's replay with scripted activity results.

No engine and no host: each test replays the orchestrator the way the Durable extension drives it in Azure
(tests/durable_history.py), so a change to an orchestrator's control flow is caught in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from devhost.index import index_app
from shared import names
from tests.durable_history import OrchestrationReplay


@pytest.fixture(scope="module")
def handles() -> dict[str, Callable[..., Any]]:
    # The handles DFApp registers, on an app of our own: the library's get_functions() runs once per app object.
    import importlib
    import pkgutil

    import azure.durable_functions as df

    import orchestrations

    app = df.DFApp()
    for info in pkgutil.iter_modules(orchestrations.__path__):  # each module of functions holds its own Blueprint
        module = importlib.import_module(f"orchestrations.{info.name}")
        if hasattr(module, "bp"):
            app.register_functions(module.bp)
    return {spec.name: spec.func for spec in index_app(app).by_type("orchestrationTrigger")}


def shutdown_input(workspaces: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "workspaces": workspaces,
        "dry_run": False,
        "mode": "opt-out",
        "exempt_tag": "keep-running",
        "keep_alive_tag": "keep-alive-until",
        "stop_timeout_seconds": 600,
        "poll_seconds": 5,
        "trigger": "http",
        **overrides,
    }


def instance(ws: str, name: str, state: str = "Running") -> dict[str, Any]:
    return {
        "workspace": ws,
        "name": name,
        "state": state,
        "tags": {},
        "last_operation": None,
        "size": "STANDARD_DS3_V2",
    }


# --- shutdown ---------------------------------------------------------------------------------------------


def test_shutdown_over_an_empty_workspace_list_completes(handles: dict[str, Callable[..., Any]]) -> None:
    """df's task_all([]) yields None: before the fix the orchestrator failed on it (Running forever on devhost)."""
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input([]))
    [save] = run.step()
    assert save.name == names.SAVE_SHUTDOWN_REPORT
    run.complete(save, "reports/empty.json")
    run.step()
    assert run.output["instances"] == []
    assert run.output["report_blob"] == "reports/empty.json"


def test_shutdown_stops_running_instances_and_reports_them(handles: dict[str, Callable[..., Any]]) -> None:
    acted: list[list[str]] = []

    def respond(name: str, payload: Any) -> Any:
        if name == names.LIST_COMPUTE_INSTANCES:
            ws = payload["workspace"]
            return {"workspace": ws, "instances": [instance(ws, "ci-1"), instance(ws, "ci-2", "Stopped")]}
        if name == names.ACT_ON_COMPUTE_INSTANCES:
            acted.append([item["name"] for item in payload["items"]])
            outcomes = [{"status": "stopping", "state_before": "Running", "message": ""} for _ in payload["items"]]
            return {"outcomes": outcomes, "arm_requests": {"reads": 0, "writes": len(outcomes)}}
        if name == names.READ_COMPUTE_STATES:
            states = {
                ws: {n: ["Stopped", "Stop", "Succeeded"] for n, _ in pending}
                for ws, pending in payload["workspaces"].items()
            }
            return {"states": states, "errors": {}, "arm_requests": {"reads": len(states), "writes": 0}}
        if name == names.PRICE_COMPUTE_SIZES:
            return {
                "prices": {
                    size: {"hourly_price": 0.5, "currency": "USD", "price_source": "override"}
                    for size in payload["sizes"]
                }
            }
        if name == names.SAVE_SHUTDOWN_REPORT:
            return "reports/run.json"
        raise AssertionError(name)

    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input(["ws-a"]))
    run.run_to_end(respond, handles)
    outcomes = {i["name"]: i["outcome"] for i in run.output["instances"]}
    assert acted == [["ci-1"]]  # one POST for the running instance, none for the stopped one
    assert outcomes["ci-1"] == "stopped"
    assert outcomes["ci-2"] != "stopped"
    assert run.output["arm_requests"] == {"reads": 1, "writes": 1}
    assert run.custom_status["phase"] == "done"


def test_shutdown_keeps_its_report_when_saving_fails_after_every_retry(handles: dict[str, Callable[..., Any]]) -> None:
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input(["ws-a"]))
    [listing] = run.step()
    run.complete(listing, {"workspace": "ws-a", "instances": []})
    attempts = 0
    [task] = run.step()
    while not run.done:
        if task.kind == "timer":
            # The extension's retry: a timer after every failed attempt, the last one included.
            assert task.fire_at == run.now + timedelta(seconds=5)
            run.fire(task)
        else:
            attempts += 1
            run.fail(task, "storage unavailable", "ServiceRequestError")
        scheduled = run.step()
        task = scheduled[0] if scheduled else task
    assert attempts == 3
    assert run.output["report_blob"] is None
    assert "storage unavailable" in run.output["report_error"]
    assert "Activity function 'save_shutdown_report' failed: ServiceRequestError" in run.output["report_error"]


def test_a_stop_refused_every_time_is_reported_failed_with_arm_message(
    handles: dict[str, Callable[..., Any]],
) -> None:
    def respond(name: str, payload: Any) -> Any:
        if name == names.LIST_COMPUTE_INSTANCES:
            return {"workspace": payload["workspace"], "instances": [instance(payload["workspace"], "ci")]}
        if name == names.ACT_ON_COMPUTE_INSTANCES:
            outcome = {"status": "retryable", "message": "ARM answered 503: Service Unavailable"}
            return {"outcomes": [outcome for _ in payload["items"]], "arm_requests": {"reads": 0, "writes": 1}}
        if name == names.SAVE_SHUTDOWN_REPORT:
            return "reports/run.json"
        raise AssertionError(name)

    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input(["ws"])).run_to_end(respond)
    [result] = run.output["instances"]
    assert result["outcome"] == "failed"
    assert result["error"].startswith("stop request failed")
    assert "ARM answered 503: Service Unavailable" in result["error"]
