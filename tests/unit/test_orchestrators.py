"""The app's orchestrators stepped through azure-functions-durable's replay with scripted activity results.

No engine and no host: each test replays the orchestrator the way the Durable extension drives it in Azure
(tests/durable_history.py), so a change to an orchestrator's control flow is caught in seconds.
"""

from __future__ import annotations

import json
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
        "notice_minutes": 0,  # no heads-up unless a test asks for one
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


# --- the heads-up (issue 23) ---------------------------------------------------------------------------------------


def _ws_job(notices: bool) -> dict[str, Any]:
    plan = {"workspace": "sub/rg/ws", "instances": 2, "to_act": 2}
    return {"run_id": "run", "kind": "shutdown", "plan": plan, "trace": {}, "notices": notices}


def _answer(wake: timedelta | None) -> dict[str, Any]:
    return {"progress": {"workspace": "sub/rg/ws", "done": 0}, "wake_at": (START + wake).isoformat() if wake else None}


def _steps(scheduled: list[Any]) -> list[Any]:
    return [t for t in scheduled if t.name == names.STEP_COMPUTE_WORKSPACE]


def test_a_workspace_announcing_its_stops_waits_on_a_timer_raced_with_the_notice_event(
    handles: dict[str, Callable[..., Any]],
) -> None:
    """A click (the event `notice`) wakes the workspace at once; the timer is cancelled. An event raised while a step
    runs (nobody waits) is not lost, even after waits the timer won: df gives an event to the newest task waiting for
    its name, so the orchestration keeps one event task across its waits (a fresh one per wait left the old ones to
    swallow the event, and the click waited for the next timer: up to the whole heads-up)."""
    run = OrchestrationReplay(handles[names.COMPUTE_WORKSPACE_ORCHESTRATOR], _ws_job(True), instance_id="run:ws:1")
    [step] = run.step()
    run.complete(step, _answer(timedelta(minutes=30)))
    [timer] = run.step()
    assert (timer.kind, timer.fire_at) == ("timer", START + timedelta(minutes=30))
    run.raise_event(names.NOTICE_EVENT, None)  # an owner clicks: the step runs now, not in 30 minutes
    [step] = _steps(run.step())
    run.complete(step, _answer(timedelta(minutes=20)))
    [timer] = run.step()
    run.fire(timer)  # the timer wins this time (the event task stays open)
    [step] = _steps(run.step())
    run.raise_event(names.NOTICE_EVENT, None)  # a click while the step runs
    run.complete(step, _answer(timedelta(minutes=40)))
    scheduled = run.step()
    assert _steps(scheduled), f"the click was lost: {scheduled}"  # the next wait ends at once with it
    run.complete(_steps(scheduled)[0], _answer(None))
    [finish] = run.step()
    assert finish.name == names.FINISH_COMPUTE_WORKSPACE


# df warns of an event no task waits for, and buffers it (what this test sends on purpose).
@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning")
def test_a_workspace_without_a_heads_up_waits_on_timers_only(handles: dict[str, Callable[..., Any]]) -> None:
    run = OrchestrationReplay(handles[names.COMPUTE_WORKSPACE_ORCHESTRATOR], _ws_job(False), instance_id="run:ws:1")
    [step] = run.step()
    run.complete(step, _answer(timedelta(seconds=5)))
    [timer] = run.step()
    run.raise_event(names.NOTICE_EVENT, None)  # nobody listens: the timer alone ends the wait
    assert run.step() == []
    run.fire(timer)
    assert _steps(run.step())


def test_a_shutdown_with_a_heads_up_announces_beside_its_workspaces_and_reports_it(
    handles: dict[str, Callable[..., Any]],
) -> None:
    calls: list[str] = []
    plans: list[Any] = []

    def respond(name: str, payload: Any) -> Any:
        calls.append(name)
        if name == names.PLAN_COMPUTE_NOTICE:
            assert payload == {"minutes": 2.5, "dry_run": False, "error": None}
            return {"minutes": 2.5, "error": None}
        if name == names.PLAN_COMPUTE_WORKSPACE:
            plans.append(payload)
            return {"workspace": payload["workspace"], "instances": 2, "to_act": 1}
        if name == names.SEND_COMPUTE_NOTICES:
            assert payload["workspaces"] == ["sub/rg/ws-a"]
            return {"owners": 1, "instances": 1, "messages_sent": 2, "failures": []}
        if name == names.STEP_COMPUTE_WORKSPACE:
            return _answer(None)
        if name == names.FINISH_COMPUTE_WORKSPACE:
            return tally(payload["workspace"], stopped=1, skipped=1)
        return "reports/shutdown/run.json"

    job = shutdown_input(["sub/rg/ws-a"], notice_minutes=2.5)
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], job, instance_id="run").run_to_end(respond, handles)
    assert calls[:2] == [names.PLAN_COMPUTE_NOTICE, names.PLAN_COMPUTE_WORKSPACE]
    assert plans[0]["notice_minutes"] == 2.5  # the plan makes its stops due after the heads-up
    ws_inputs = [json.loads(c.input or "{}") for c in run.tree() if c.instance_id.startswith("run:ws:")]
    assert ws_inputs and all(i["notices"] for i in ws_inputs)
    heads_up = run.output["heads_up"]
    assert (heads_up["minutes"], heads_up["messages_sent"], heads_up["error"]) == (2.5, 2, None)


@pytest.mark.parametrize(
    ("overrides", "calls_plan"),
    [({"dry_run": True, "notice_minutes": 30}, False), ({"notice_minutes": 0}, False), ({"notice_minutes": 30}, True)],
)
def test_a_run_without_channels_a_dry_run_or_no_minutes_announces_nothing_and_waits_for_nothing(
    handles: dict[str, Callable[..., Any]], overrides: dict[str, Any], calls_plan: bool
) -> None:
    calls: list[str] = []

    def respond(name: str, payload: Any) -> Any:
        calls.append(name)
        if name == names.PLAN_COMPUTE_NOTICE:
            return {"minutes": 0, "error": None}  # no channel configured
        if name == names.PLAN_COMPUTE_WORKSPACE:
            assert payload["notice_minutes"] == 0
            return {"workspace": payload["workspace"], "instances": 1, "to_act": 1}
        if name == names.STEP_COMPUTE_WORKSPACE:
            return _answer(None)
        if name == names.FINISH_COMPUTE_WORKSPACE:
            return tally(payload["workspace"], stopped=1)
        return "reports/shutdown/run.json"

    job = shutdown_input(["sub/rg/ws-a"], **overrides)
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], job, instance_id="run").run_to_end(respond, handles)
    assert (names.PLAN_COMPUTE_NOTICE in calls) == calls_plan
    assert names.SEND_COMPUTE_NOTICES not in calls
    assert run.output["heads_up"] is None
    assert all(
        not json.loads(c.input or "{}").get("notices") for c in run.tree() if c.instance_id.startswith("run:ws:")
    )


def test_a_malformed_notice_setting_is_reported_and_the_stops_do_not_wait(
    handles: dict[str, Callable[..., Any]],
) -> None:
    def respond(name: str, payload: Any) -> Any:
        if name == names.PLAN_COMPUTE_NOTICE:
            return {"minutes": 0, "error": "no heads-up was sent: setting NOTIFY_CHANNELS[1].kind is 'fax'"}
        if name == names.PLAN_COMPUTE_WORKSPACE:
            assert payload["notice_minutes"] == 0
            return {"workspace": payload["workspace"], "instances": 1, "to_act": 1}
        if name == names.STEP_COMPUTE_WORKSPACE:
            return _answer(None)
        if name == names.FINISH_COMPUTE_WORKSPACE:
            return tally(payload["workspace"], stopped=1)
        return "reports/shutdown/run.json"

    job = shutdown_input(["sub/rg/ws-a"], notice_minutes=30)
    run = OrchestrationReplay(handles[names.SHUTDOWN_ORCHESTRATOR], job, instance_id="run").run_to_end(respond, handles)
    assert run.output["heads_up"]["error"].endswith("NOTIFY_CHANNELS[1].kind is 'fax'")
    assert run.output["totals"]["stopped"] == 1
