"""Report assembly: outcomes per instance, totals, workspace failures, blob name, progress status."""

from datetime import UTC, datetime

from shared.compute.arm import ComputeInstance
from shared.compute.policy import Decision
from shared.compute.report import (
    ShutdownReport,
    WorkspaceResult,
    all_workspaces_failed_message,
    build_report,
    progress_status,
    report_blob_name,
    result_without_stop,
    stop_result,
)

START = datetime(2025, 3, 10, 22, 0, tzinfo=UTC)
END = datetime(2025, 3, 10, 22, 3, 30, tzinfo=UTC)


def ci(name: str, state: str = "Running", ws: str = "s/rg/ws-a") -> ComputeInstance:
    return ComputeInstance(workspace=ws, name=name, state=state)


def sample_results():
    stop = Decision("stop", "stop (Running, opt-out mode)")
    return [
        result_without_stop(ci("b-stopped", "Stopped"), Decision("already_stopped", "already Stopped")),
        result_without_stop(ci("c-exempt"), Decision("skip", "exempt: tagged auto-shutdown=off")),
        result_without_stop(ci("d-dry"), Decision("would_stop", "dry run: would stop")),
        stop_result(ci("a-ok"), stop, {"outcome": "stopped", "seconds": 62.5}),
        stop_result(ci("e-full"), stop, {"outcome": "failed", "error": "UserError: disk is full", "seconds": 1}),
        stop_result(ci("f-slow"), stop, {"outcome": "timed_out", "error": "not Stopped within 600 s"}),
        stop_result(ci("g-gone"), stop, {"outcome": "skipped", "note": "not found (deleted meanwhile?)"}),
        stop_result(ci("h-odd"), stop, {"outcome": "exploded"}),
    ]


def test_report_lists_every_instance_sorted_with_totals():
    workspaces = [WorkspaceResult("s/rg/ws-a", 8), WorkspaceResult("s/rg/ws-b", 0, "ARM answered 500")]
    report = build_report(
        instance_id="abc",
        trigger="http",
        dry_run=False,
        mode="opt-out",
        started_at=START,
        finished_at=END,
        workspaces=workspaces,
        instances=sample_results(),
    ).to_dict()

    assert [i["name"] for i in report["instances"]] == [
        "a-ok",
        "b-stopped",
        "c-exempt",
        "d-dry",
        "e-full",
        "f-slow",
        "g-gone",
        "h-odd",
    ]
    assert report["totals"] == {
        "stopped": 1,
        "started": 0,
        "already_stopped": 1,
        "skipped": 3,
        "failed": 2,
        "timed_out": 1,
        "instances": 8,
        "workspaces": 2,
        "workspaces_failed": 1,
        "estimated_savings": 0.0,  # no entry priced (see test_savings)
        "currency": None,
    }
    assert report["seconds"] == 210.0
    by_name = {i["name"]: i for i in report["instances"]}
    assert by_name["e-full"]["error"] == "UserError: disk is full"
    assert by_name["g-gone"]["reason"].endswith("not found (deleted meanwhile?)")
    assert "exploded" in by_name["h-odd"]["error"]
    assert by_name["a-ok"]["seconds"] == 62.5
    assert by_name["b-stopped"]["state_before"] == "Stopped"
    assert report["workspaces"][1]["error"] == "ARM answered 500"


def test_report_round_trips():
    report = build_report(
        instance_id="abc",
        trigger="timer",
        dry_run=True,
        mode="opt-in",
        started_at=START,
        finished_at=END,
        workspaces=[WorkspaceResult("s/rg/ws-a", 8)],
        instances=sample_results(),
    )
    assert ShutdownReport.from_dict(report.to_dict()) == report


def test_blob_name_is_dated_by_the_start():
    assert report_blob_name("abc123", START) == "shutdown/2025/03/10/abc123.json"
    assert report_blob_name("abc123", "2025-01-02T23:59:00+00:00") == "shutdown/2025/01/02/abc123.json"


def test_only_all_workspaces_failing_fails_the_run():
    ok, bad = WorkspaceResult("s/rg/a", 3), WorkspaceResult("s/rg/b", 0, "HTTP 503")
    assert all_workspaces_failed_message([ok, bad]) is None
    message = all_workspaces_failed_message([bad, WorkspaceResult("s/rg/c", 0, "not found")])
    assert message is not None
    assert "every workspace (2)" in message and "s/rg/b: HTTP 503" in message


def test_progress_counts():
    status = progress_status("stopping", 10, sample_results()[:4], to_stop=5)
    assert status == {
        "phase": "stopping",
        "instances": 10,
        "to_stop": 5,
        "done": 4,
        "stopped": 1,
        "started": 0,
        "already_stopped": 1,
        "skipped": 2,
        "failed": 0,
        "timed_out": 0,
    }
