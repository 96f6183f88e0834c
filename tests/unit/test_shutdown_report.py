"""Report lines: each acted-on instance's outcome, error and note; the blob name; when a run fails outright."""

from datetime import UTC, datetime

from shared.compute.arm import ComputeInstance
from shared.compute.report import WorkspaceResult, acted_result, all_workspaces_failed_message, report_blob_name

START = datetime(2025, 3, 10, 22, 0, tzinfo=UTC)
STOP_REASON = "stop (Running, opt-out mode)"


def ci(name: str, state: str = "Running", ws: str = "s/rg/ws-a") -> ComputeInstance:
    return ComputeInstance(workspace=ws, name=name, state=state)


def test_an_acted_on_instance_gets_the_outcome_its_steps_saw_with_the_error_and_the_note():
    ok = acted_result(ci("a-ok"), "stop", STOP_REASON, {"outcome": "stopped", "seconds": 62.5004})
    assert (ok.outcome, ok.error, ok.seconds, ok.state_before) == ("stopped", None, 62.5, "Running")
    full = acted_result(ci("e-full"), "stop", STOP_REASON, {"outcome": "failed", "error": "UserError: disk is full"})
    assert (full.outcome, full.error) == ("failed", "UserError: disk is full")
    gone = acted_result(ci("g-gone"), "stop", STOP_REASON, {"outcome": "skipped", "note": "not found (deleted?)"})
    assert (gone.outcome, gone.reason) == ("skipped", f"{STOP_REASON}; not found (deleted?)")
    started = acted_result(ci("s", "Stopped"), "start", "schedule office", {"outcome": "started"})
    assert (started.decision, started.outcome, started.state_before) == ("start", "started", "Stopped")


def test_an_outcome_the_app_does_not_know_is_a_failure_that_names_it():
    odd = acted_result(ci("h-odd"), "stop", STOP_REASON, {"outcome": "exploded"})
    assert odd.outcome == "failed" and odd.error is not None and "'exploded'" in odd.error


def test_blob_name_is_dated_by_the_start():
    assert report_blob_name("abc123", START) == "shutdown/2025/03/10/abc123.json"
    assert report_blob_name("abc123", "2025-01-02T23:59:00+00:00") == "shutdown/2025/01/02/abc123.json"
    assert report_blob_name("abc123", START, "reconcile") == "reconcile/2025/03/10/abc123.json"


def test_only_all_workspaces_failing_fails_the_run():
    ok, bad = WorkspaceResult("s/rg/a", 3), WorkspaceResult("s/rg/b", 0, "HTTP 503")
    assert all_workspaces_failed_message([ok, bad]) is None
    message = all_workspaces_failed_message([bad, WorkspaceResult("s/rg/c", 0, "not found")])
    assert message is not None
    assert "every workspace (2)" in message and "s/rg/b: HTTP 503" in message
