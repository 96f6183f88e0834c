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
from tests.durable_history import START, ActivityError, OrchestrationReplay


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


def tally(ws: str, **outcomes: int) -> dict[str, Any]:
    return {
        "workspaces": [{"workspace": ws, "instances": sum(outcomes.values()), "error": None}],
        "outcomes": outcomes,
        "savings": {"USD": 1.5} if outcomes.get("stopped") else {},
        "arm_requests": {"reads": 2, "writes": outcomes.get("stopped", 0)},
        "acted": outcomes.get("stopped", 0),
        "failures": [],
        "parts": {ws: f"runs/run/{ws[-1]}.part.json"},
    }


# --- shutdown ---------------------------------------------------------------------------------------------


def test_shutdown_over_an_empty_workspace_list_completes(handles: dict[str, Callable[..., Any]]) -> None:
    """df's task_all([]) yields None: before the fix the orchestrator failed on it (Running forever on devhost)."""
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input([]))
    [save] = run.step()
    assert save.name == names.ASSEMBLE_COMPUTE_REPORT
    run.complete(save, "reports/empty.json")
    run.step()
    assert run.output["totals"]["instances"] == 0
    assert run.output["report_blob"] == "reports/empty.json"


def test_shutdown_fans_out_per_subscription_and_workspace_and_keeps_counts_only(
    handles: dict[str, Callable[..., Any]],
) -> None:
    workspaces = ["sub-1/rg/ws-a", "sub-1/rg/ws-b", "sub-2/rg/ws-c"]
    steps: dict[str, int] = {}

    def respond(name: str, payload: Any) -> Any:
        ws = payload.get("workspace")
        if name == names.PLAN_COMPUTE_WORKSPACE:
            return {"workspace": ws, "instances": 2, "to_act": 1, "outcomes": {"skipped": 1}}
        if name == names.STEP_COMPUTE_WORKSPACE:
            steps[ws] = steps.get(ws, 0) + 1
            wake = (START + timedelta(seconds=5 * steps[ws])).isoformat() if steps[ws] < 3 else None
            return {"progress": {"workspace": ws, "done": steps[ws] // 3}, "wake_at": wake}
        if name == names.FINISH_COMPUTE_WORKSPACE:
            return tally(ws, stopped=1, skipped=1)
        if name == names.ASSEMBLE_COMPUTE_REPORT:
            assert sorted(payload["parts"]) == workspaces
            assert "instances" not in payload["head"]
            return "reports/shutdown/run.json"
        raise AssertionError(name)

    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input(workspaces), instance_id="run")
    run.run_to_end(respond, handles)
    subs = sorted(t.instance_id or "" for t in run.tasks.values() if t.kind == "suborchestration")
    assert len(subs) == 4 and all(s.startswith(("run:plan:", "run:run:")) for s in subs)  # 2 subscriptions x 2
    assert steps == dict.fromkeys(workspaces, 3)  # each workspace stepped until it said nothing is left
    output = run.output
    assert "instances" not in output
    assert output["totals"]["stopped"] == 3 and output["totals"]["instances"] == 6
    assert output["totals"]["estimated_savings"] == 4.5 and output["totals"]["currency"] == "USD"
    assert output["arm_requests"] == {"reads": 6, "writes": 3}
    assert output["report_blob"] == "reports/shutdown/run.json"
    assert [w["workspace"] for w in output["workspaces"]] == workspaces
    assert run.custom_status["phase"] == "done" and run.custom_status["done"] == 6


def test_shutdown_keeps_its_summary_when_saving_the_report_fails_after_every_retry(
    handles: dict[str, Callable[..., Any]],
) -> None:
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], shutdown_input([]))
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
    assert "Activity function 'assemble_compute_report' failed: ServiceRequestError" in run.output["report_error"]


def test_a_workspace_whose_steps_keep_failing_is_finished_with_the_reason(
    handles: dict[str, Callable[..., Any]],
) -> None:
    plan = {"workspace": "sub/rg/ws", "instances": 1, "to_act": 1}
    start = {"run_id": "run", "kind": "shutdown", "plan": plan, "trace": {}}
    finished: list[Any] = []

    def respond(name: str, payload: Any) -> Any:
        if name == names.STEP_COMPUTE_WORKSPACE:
            raise ActivityError("the ledger was damaged", "ValueError")
        finished.append(payload["aborted"])
        return tally("sub/rg/ws", failed=1)

    run = OrchestrationReplay(handles[names.COMPUTE_WORKSPACE_ORCHESTRATOR], start).run_to_end(respond)
    assert finished and finished[0].startswith("a step failed: Activity function 'step_compute_workspace' failed")
    assert run.output["outcomes"] == {"failed": 1}


def test_the_plan_lists_again_on_a_durable_timer_only_what_failed(handles: dict[str, Callable[..., Any]]) -> None:
    planned: list[tuple[str, bool]] = []

    def respond(name: str, payload: Any) -> Any:
        planned.append((payload["workspace"], payload["final"]))
        retry = payload["workspace"].endswith("b") and not payload["final"]
        return {"workspace": payload["workspace"], "retryable": retry, "error": "503" if retry else None}

    start = {
        "run_id": "r",
        "kind": "shutdown",
        "at": START.isoformat(),
        "run": {},
        "poll_seconds": 2,
        "workspaces": ["s/rg/a", "s/rg/b"],
    }
    run = OrchestrationReplay(handles[names.COMPUTE_PLAN_ORCHESTRATOR], start).run_to_end(respond)
    assert planned == [("s/rg/a", False), ("s/rg/b", False), ("s/rg/b", False), ("s/rg/b", True)]
    assert [p["workspace"] for p in run.output] == ["s/rg/a", "s/rg/b"]
