"""The dashboard page rendered from plain data: escaping, reconcile fields when present, old reports, a long run's
first rows, savings per currency."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from shared.compute.savings_month import RunSavings, summarize
from shared.web.dashboard import Page, SavedReport, SelectedRun, page_link, render_page, scoring_run_from_status

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EVIL = "<script>alert('x')</script>"


def _entry(name: str, outcome: str = "stopped", **extra: Any) -> dict[str, Any]:
    return {
        "workspace": "sub/rg/ws",
        "name": name,
        "state_before": "Running",
        "decision": "stop",
        "reason": "stop (Running, opt-out mode)",
        "outcome": outcome,
        "error": None,
        **extra,
    }


def _report(kind: str, run_id: str, at: str, instances: list[dict[str, Any]], **totals: Any) -> SelectedRun:
    counts: dict[str, Any] = {"stopped": sum(i["outcome"] == "stopped" for i in instances), **totals}
    head = {
        "instance_id": run_id,
        "trigger": "timer",
        "dry_run": False,
        "mode": "opt-out",
        "started_at": at,
        "finished_at": at,
        "seconds": 3.0,
        "totals": counts,
        "workspaces": [{"workspace": "sub/rg/ws", "instances": len(instances), "error": None}],
    }
    # A report as the page reads it: its head (every field but `instances`) and the first rows of its instances.
    return SelectedRun(SavedReport(kind, f"{kind}/{at[:10].replace('-', '/')}/{run_id}.json", head), instances, False)


def _page(runs: list[SelectedRun], **kwargs: Any) -> str:
    page = Page(
        reports=[run.report for run in runs],
        selected=kwargs.pop("selected", runs[0] if runs else None),
        month="2026-11",
        scoring=kwargs.pop("scoring", []),
        schedules=kwargs.pop("schedules", None),
        now=NOW,
        **kwargs,
    )
    return render_page(page, page_link({"code": "k&y"}))


def test_user_data_is_escaped_everywhere_it_appears() -> None:
    report = _report(
        "shutdown",
        "run-1",
        "2026-11-28T22:00:00+00:00",
        [_entry(EVIL, reason=f"keep-alive-until={EVIL!r} is not an ISO 8601 time", error=EVIL)],
    )
    scoring = scoring_run_from_status(
        {
            "name": "scoring_orchestrator",
            "instanceId": "score-1",
            "runtimeStatus": "Failed",
            "input": {"request": {"container": "incoming", "name": f"{EVIL}.csv"}},
            "output": f"Orchestrator function failed: {EVIL}",
        }
    )
    schedules = [{"name": EVIL, "timezone": "Europe/Berlin", "next_transitions": [], "instances": [EVIL]}]
    html = _page([report], scoring=[scoring], schedules=schedules)
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 6
    # The key of a `?code=` link is kept and quoted, never raw in an attribute.
    assert "?code=k%26y&amp;run=run-1" in html


def test_reconcile_fields_are_shown_when_present_and_old_reports_render_without_them() -> None:
    reconcile = _report(
        "reconcile",
        "rec-1",
        "2026-11-29T07:00:00+00:00",
        [
            _entry(
                "ci-a",
                "started",
                vm_size="STANDARD_DS3_V2",
                hourly_price=0.293,
                currency="USD",
                price_source="retail",
                estimated_hours_saved=10.0,
                estimated_savings=2.93,
            )
        ],
        started=1,
        estimated_savings=2.93,
        currency="USD",
        arm_requests={"reads": 3, "writes": 1},
    )
    old = _report("shutdown", "old-1", "2026-11-28T22:00:00+00:00", [_entry("ci-b")])
    html = _page([reconcile, old])
    runs = html.split("<section id=run>")[0]
    assert "2.93 USD" in runs and "3 reads, 1 writes" in runs
    assert re.search(r"<td>reconcile</td>.*?<td class=n>1</td>", runs)  # started
    detail = html.split("<section id=run>")[1].split("</section>")[0]
    assert "STANDARD_DS3_V2" in detail and "0.29 USD" in detail and "10.0" in detail
    # The old report: no savings columns, a dash for savings, no error.
    old_html = _page([old])
    assert "VM size" not in old_html and "—" in old_html and "ARM requests" not in old_html


def test_the_month_shows_one_total_and_one_chart_per_currency_never_their_sum() -> None:
    runs = [
        RunSavings("shutdown", "2026-11-03", False, 1, 0, {"EUR": 5.5}),
        RunSavings("reconcile", "2026-11-03", False, 1, 0, {"EUR": 1.0, "USD": 2.25}),
        RunSavings("shutdown", "2026-11-04", False, 1, 0, None),  # an old report: no estimate
        RunSavings("shutdown", "2026-11-05", True, 1, 0, {"EUR": 9.0}),  # a dry run saved nothing
    ]
    html = _page([], savings=summarize("2026-11", runs))
    section = html[html.index("<section id=savings>") :]
    assert "Total: <strong>6.50 EUR, 2.25 USD</strong>" in section
    assert section.count("<svg") == 2 and ">EUR</text>" in section and ">USD</text>" in section
    assert "2026-11-03: 6.50 EUR" in section and "2026-11-03: 2.25 USD" in section
    assert "8.75" not in section  # EUR and USD are never added
    assert "1 run(s) of this month stopped or started instances without a savings estimate" in section


def test_a_long_run_shows_its_first_rows_its_counts_by_outcome_and_a_link_to_the_whole_report() -> None:
    run = _report("shutdown", "big-1", "2026-11-28T22:00:00+00:00", [_entry(f"ci-{i:05d}") for i in range(3)])
    head = {**run.report.data, "totals": {"stopped": 9_990, "failed": 10, "instances": 10_000}}
    big = SelectedRun(SavedReport(run.report.kind, run.report.blob, head), run.instances, True)
    html = _page([big])
    detail = html.split("<section id=run>")[1].split("</section>")[0]
    assert "Instances by outcome: stopped: 9990 · failed: 10." in detail
    assert detail.count("<td class=ok>stopped</td>") == 3
    assert "The first 3 of 10000 instances; every one is in the" in detail
    assert "?code=k%26y&amp;run=big-1&amp;format=json" in detail


def test_scoring_runs_show_progress_while_running_and_files_when_done() -> None:
    running = scoring_run_from_status(
        {
            "name": "scoring_orchestrator",
            "instanceId": "score-r",
            "runtimeStatus": "Running",
            "input": {"request": {"container": "incoming", "name": "big.csv"}},
            "customStatus": {"stage": "scoring", "chunks_done": 3, "chunks_total": 8, "rows": 120},
        }
    )
    done = scoring_run_from_status(
        {
            "name": "scoring_orchestrator",
            "instanceId": "score-d",
            "runtimeStatus": "Completed",
            "input": {"request": {"container": "incoming", "name": "a b.csv"}},
            "output": {
                "source": "incoming/a b.csv",
                "rows": 10,
                "bad_rows": 2,
                "output_container": "predictions",
                "output_name": "a b.csv",
                "errors_container": "scoring-errors",
                "errors_name": "a b.csv",
            },
        }
    )
    html = _page([], scoring=[running, done])
    assert "<progress value='3' max='8'></progress> 3 / 8 chunks" in html
    assert "http-equiv=refresh" in html  # moves on by itself while a run is going on
    assert "?code=k%26y&amp;download=predictions%2Fa%20b.csv" in html
    assert "download=scoring-errors%2Fa%20b.csv" in html
    assert "No shutdown or reconcile run has saved a report yet." in html
    assert "No schedules configured." in html
    assert "http-equiv=refresh" not in _page([], scoring=[done])


def test_each_schedule_shows_its_next_transitions_and_the_instances_following_it() -> None:
    from shared.compute.schedules import describe, parse_schedules, sorted_schedules
    from shared.compute.schedules_view import dashboard_rows

    schedules = parse_schedules(
        '[{"name": "berlin-office", "timezone": "Europe/Berlin",'
        ' "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}]}]'
    )
    # The shape GET /api/schedules answers (shared.compute.schedules_view.schedules_overview), at Sunday noon UTC.
    overview = {
        "schedule_tag": "compute-schedule",
        "error": None,
        "schedules": [
            {**s, "instances": [{"workspace": "sub/rg/ws", "name": "ci-anna", "state": "Stopped"}]}
            for s in describe(sorted_schedules(schedules), NOW)
        ],
        "instances_with_unknown_schedule": [
            {"workspace": "sub/rg/ws", "name": "ci-typo", "state": "Running", "schedule": "berlin-ofice"}
        ],
        "listing_errors": [],
    }
    html = _page([], schedules=dashboard_rows(overview))
    section = html[
        html.index("<section id=schedules>") : html.index("</section>", html.index("<section id=schedules>"))
    ]
    assert "berlin-office" in section and "Europe/Berlin" in section
    # Monday 30 November: start at 08:00 Berlin (07:00 UTC), stop at 19:00 Berlin.
    assert "start at 2026-11-30 07:00" in section and "(2026-11-30T08:00:00+01:00)" in section
    assert "stop at 2026-11-30 18:00" in section
    assert "sub/rg/ws/ci-anna" in section
    # An instance tagged with a schedule that does not exist is shown, with why nothing happens to it.
    assert "sub/rg/ws/ci-typo" in section and "no schedule named &#x27;berlin-ofice&#x27;" in section
    assert "(tag compute-schedule=berlin-ofice): the nightly shutdown policy applies to it" in section
    assert "No schedules configured." not in html


def test_a_malformed_schedules_setting_or_an_unlisted_workspace_is_said_on_the_page() -> None:
    from shared.compute.schedules_view import dashboard_rows

    overview = {
        "schedule_tag": "compute-schedule",
        "error": "COMPUTE_SCHEDULES: berlin-office.periods[0].begin: expected HH:MM, got string '8'",
        "schedules": [],
        "instances_with_unknown_schedule": [],
        "listing_errors": [{"workspace": "sub/rg/ws", "error": "ARM answered 503"}],
    }
    section = _page([], schedules=dashboard_rows(overview))
    assert "periods[0].begin: expected HH:MM" in section


def test_a_run_that_repaired_the_reconcilers_progress_or_met_a_malformed_schedule_says_so() -> None:
    base = _report("reconcile", "rec-2", "2026-11-29T07:00:00+00:00", [_entry("ci-a")])
    head = {
        **base.report.data,
        "state_errors": [
            {
                "workspace": "sub/rg/ws",
                "error": f"reconcile state reports/reconcile/state/sub/rg/ws.json was damaged: {EVIL}",
            }
        ],
        "schedules_error": "COMPUTE_SCHEDULES: schedule 'x', field 'periods': missing",
    }
    report = SelectedRun(SavedReport(base.report.kind, base.report.blob, head), base.instances, False)
    detail = _page([report]).split("<section id=run>")[1].split("</section>")[0]
    assert "reconcile state reports/reconcile/state/sub/rg/ws.json was damaged" in detail
    assert EVIL not in detail and "&lt;script&gt;" in detail
    assert "COMPUTE_SCHEDULES is malformed: COMPUTE_SCHEDULES: schedule &#x27;x&#x27;" in detail
