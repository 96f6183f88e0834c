"""What a compute run keeps: tallies merged without growing with the fleet, totals per currency, live progress."""

from __future__ import annotations

from shared.compute.report import WorkspaceResult
from shared.compute.run_summary import MAX_FAILURES, Tally, live_progress, merge, totals


def test_savings_in_several_currencies_are_never_added() -> None:
    ws = [WorkspaceResult("s/r/w", 3)]
    one = totals({"stopped": 2}, ws, {"USD": 1.234 + 2.0})
    assert (one["estimated_savings"], one["currency"], one["estimated_savings_by_currency"]) == (
        3.23,
        "USD",
        {"USD": 3.23},
    )
    mixed = totals({"stopped": 2}, ws, {"USD": 1.5, "EUR": 2.25})
    assert (mixed["estimated_savings"], mixed["currency"]) == (None, None)
    assert mixed["estimated_savings_by_currency"] == {"EUR": 2.25, "USD": 1.5}
    none = totals({"skipped": 1}, ws, {})
    assert (none["estimated_savings"], none["currency"], none["estimated_savings_by_currency"]) == (0.0, None, {})


def test_totals_count_every_outcome_instance_and_failed_workspace() -> None:
    ws = [WorkspaceResult("s/rg/ws-a", 8), WorkspaceResult("s/rg/ws-b", 0, "ARM answered 500")]
    outcomes = {"stopped": 1, "already_stopped": 1, "skipped": 3, "failed": 2, "timed_out": 1}
    assert totals(outcomes, ws, {}) == {
        "stopped": 1,
        "started": 0,
        "already_stopped": 1,
        "skipped": 3,
        "failed": 2,
        "timed_out": 1,
        "instances": 8,
        "workspaces": 2,
        "workspaces_failed": 1,
        "estimated_savings": 0.0,
        "currency": None,
        "estimated_savings_by_currency": {},
    }


def test_merged_tallies_sum_counts_and_keep_a_bounded_sample_of_failures() -> None:
    failures = tuple({"name": f"ci-{i}", "outcome": "failed"} for i in range(15))
    parts = [
        Tally(
            workspaces=(WorkspaceResult(f"s/r/w{k}", 100),),
            outcomes={"stopped": 85, "failed": 15},
            savings={"USD": 10.0},
            arm_requests={"reads": 2, "writes": 100},
            acted=100,
            failures=failures,
            parts={f"s/r/w{k}": f"runs/r/{k}.part.json"},
        )
        for k in range(100)
    ]
    merged = merge(parts)
    assert merged.outcomes == {"stopped": 8500, "failed": 1500}
    assert merged.savings == {"USD": 1000.0} and merged.arm_requests == {"reads": 200, "writes": 10000}
    assert len(merged.failures) == MAX_FAILURES and len(merged.parts) == 100


def test_live_progress_counts_what_the_workspaces_finished() -> None:
    run = {"phase": "stopping", "instances": 9, "to_stop": 4, "done": 5, "stopped": 0, "skipped": 4}
    assert live_progress(run, [None, None]) == run  # still planning: the run's own counts
    workspaces = [{"instances": 5, "done": 5, "skipped": 4, "stopped": 1}, {"instances": 4, "done": 3, "stopped": 2}]
    shown = live_progress(run, workspaces)
    assert (shown["done"], shown["stopped"], shown["skipped"], shown["instances"]) == (8, 3, 4, 9)
