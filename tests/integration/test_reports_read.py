"""Saved run reports as the dashboard and `GET /api/savings` read them from storage (Azurite, through devhost):

- both say the same about a month's savings, per currency, for every shape reports have had (before savings were
  estimated, one currency, per currency, mixed, a NaN from a bad price, fields after `instances`, a head larger
  than one read, a blob that is not JSON), and neither counts the reconciler's state blobs as runs;
- 1,000 saved runs and one run of 10,000 instances: the first view answers within 1 s, under 1 MB, and keeps no
  parsed reports in memory (the figures go to reports/dashboard-scale.json).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.reports import as_bytes, blob_name, report, upload_all

pytestmark = pytest.mark.integration

SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",  # 1 January never comes during a test
    "AML_WORKSPACES": "0a1b2c3d-0000-4000-8000-00000000da5b/rg-ops/ws-dash",  # never listed: no schedules
    "RECONCILE_TIMER": "false",
}
FIGURES = APP_ROOT / "reports" / "dashboard-scale.json"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = start_devhost(tmp_path_factory.mktemp("reports-read"), SETTINGS, workers=1)
    yield running
    running.stop()


# --- the page and the API agree --------------------------------------------------------------------------------

MONTH = "2025-03"


def _at(day: int, hour: int = 22) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def _month_of_every_shape() -> dict[str, bytes]:
    """Reports of March 2025 in every shape, and blobs under the same prefixes that are not runs."""
    shapes: dict[str, dict[str, Any]] = {
        # Saved before savings were estimated: stopped instances, no estimate.
        "old": report("old", _at(2), 2, totals={"stopped": 2, "instances": 2}),
        "usd": report("usd", _at(3), 2, totals={"stopped": 2, "estimated_savings": 5.86, "currency": "USD"}),
        "eur": report(
            "eur", _at(3, 7), 1, totals={"started": 1, "stopped": 1, "estimated_savings": 1.5, "currency": "EUR"}
        ),
        "mixed": report(
            "mixed",
            _at(5),
            3,
            totals={
                "stopped": 3,
                "estimated_savings_by_currency": {"USD": 2.93, "EUR": 4.0},
                "estimated_savings": None,
                "currency": None,
            },
        ),
        "dry": report(
            "dry", _at(5, 8), 3, dry_run=True, totals={"stopped": 3, "estimated_savings": 99.0, "currency": "USD"}
        ),
        # A reconcile report of the older layout: its window and errors follow the instances.
        "tail": report(
            "tail",
            _at(6, 7),
            40,
            totals={"stopped": 40, "estimated_savings": 11.72, "currency": "USD"},
            tail={"window": {"after": "2025-03-06T06:59:00+00:00", "at": "2025-03-06T07:00:00+00:00"}},
        ),
        # A head larger than the first ranged read (200 workspaces).
        "wide": report(
            "wide", _at(7), 1, workspaces=200, totals={"stopped": 1, "estimated_savings": 0.3, "currency": "USD"}
        ),
        "nan": report("nan", _at(8), 1, totals={"stopped": 1, "estimated_savings": float("nan"), "currency": "USD"}),
    }
    kinds = {"eur": "reconcile", "tail": "reconcile"}
    blobs = {
        blob_name(kinds.get(k, "shutdown"), datetime.fromisoformat(r["started_at"]), k): as_bytes(r)
        for k, r in shapes.items()
    }
    blobs["shutdown/2025/03/09/broken.json"] = b'{"instance_id": "broken", "totals": '
    blobs["reconcile/state.json"] = json.dumps({"last_evaluated": "2025-03-06T07:00:00+00:00"}).encode()
    blobs["reconcile/state/0a1b/rg-ops/ws-dash.json"] = json.dumps({"version": 1, "schedules": {}}).encode()
    # The month before and after: not this month's.
    blobs[blob_name("shutdown", _at(1) - timedelta(days=1), "feb")] = as_bytes(
        report("feb", _at(1) - timedelta(days=1), 1, totals={"stopped": 1, "estimated_savings": 7.0, "currency": "USD"})
    )
    return blobs


def _amounts(text: str) -> dict[str, float]:
    """`1,234.50 USD, 4.00 EUR` -> {"USD": 1234.5, "EUR": 4.0} (a page's way of writing amounts per currency)."""
    out = {}
    for part in text.split(", "):
        amount, _, currency = part.partition(" ")
        out[currency] = float(amount.replace(",", ""))
    return out


def _page_savings(page: str) -> tuple[dict[str, float], dict[str, dict[str, float]], int]:
    section = page[page.index("<section id=savings>") : page.index("</section>", page.index("<section id=savings>"))]
    total = re.search(r"Total: <strong>(.*?)</strong>", section)
    assert total is not None, section
    per_day: dict[str, dict[str, float]] = {}
    for day, amount in re.findall(r"<title>(\d{4}-\d{2}-\d{2}): (.*?)</title>", section):
        for currency, value in _amounts(amount).items():
            if value:
                per_day.setdefault(day, {})[currency] = value
    without = re.search(
        r"(\d+) run\(s\) of this month stopped or started instances without a savings estimate", section
    )
    return _amounts(total.group(1)), per_day, int(without.group(1)) if without else 0


def test_the_page_and_the_api_say_the_same_about_a_months_savings_per_currency(host: RunningHost) -> None:
    upload_all(host, _month_of_every_shape())
    api = host.request("GET", f"/api/savings?month={MONTH}")
    assert api.status_code == 200, api.text
    savings = api.json()
    page = host.request("GET", f"/api/dashboard?month={MONTH}")
    assert page.status_code == 200, page.text

    total, per_day, without = _page_savings(page.text)
    assert savings["estimated_savings_by_currency"] == total == {"EUR": 5.5, "USD": 20.81}
    assert (
        savings["by_day"]
        == per_day
        == {
            "2025-03-03": {"EUR": 1.5, "USD": 5.86},
            "2025-03-05": {"EUR": 4.0, "USD": 2.93},
            "2025-03-06": {"USD": 11.72},
            "2025-03-07": {"USD": 0.3},
        }
    )
    assert savings["reports_without_estimate"] == without == 2  # the old report and the NaN
    # Currencies are never added: no one number, no joined currency codes.
    assert (savings["estimated_savings"], savings["currency"]) == (None, None)
    assert savings["by_kind"] == {"shutdown": None, "reconcile": None}  # both kinds saved in two currencies
    assert savings["by_kind_by_currency"] == {
        "shutdown": {"EUR": 4.0, "USD": 9.09},
        "reconcile": {"EUR": 1.5, "USD": 11.72},
    }
    assert (savings["reports"], savings["stopped"], savings["started"]) == (7, 50, 1)
    assert savings["unreadable_reports"] == ["shutdown/2025/03/09/broken.json"]
    assert "reports/shutdown/2025/03/09/broken.json is not a readable run report" in page.text
    # The reconciler's state blobs are no runs, on the page or in the sums.
    assert "run=state" not in page.text and "ws-dash.json" not in page.text


@pytest.mark.parametrize("month", ["２０２６-12", "2026-13", "0000-00", "", "1969-12"])
def test_a_month_that_is_not_one_is_refused_by_both_naming_it(host: RunningHost, month: str) -> None:
    api = host.request("GET", "/api/savings", params={"month": month})
    page = host.request("GET", "/api/dashboard", params={"month": month})
    expected = f"month: expected a month YYYY-MM in the years 1970..2999, e.g. 2026-11, got {json.dumps(month)}"
    assert (api.status_code, api.json()) == (400, {"error": expected, "field": "month"})
    assert (page.status_code, page.text) == (400, expected)


# --- 1,000 runs and a run of 10,000 instances ------------------------------------------------------------------

RUNS = 1_000
INSTANCES_PER_RUN = 100
BIG_RUN = 10_000


def _rss(host: RunningHost) -> int:
    return int(psutil.Process(host.proc.pid).memory_info().rss)


def _timed(host: RunningHost, path: str) -> tuple[float, bytes]:
    begin = time.perf_counter()
    response = host.request("GET", path, timeout=60)
    elapsed = time.perf_counter() - begin
    assert response.status_code == 200, response.text[:2000]
    return elapsed, response.content


def _a_month_of_runs(now: datetime) -> dict[str, bytes]:
    """1,000 runs of 100 instances this month, spread over its days so far, and the reconciler's old state blob."""
    first = now.replace(day=1, hour=0, minute=0, second=0)
    step = max((now - first) / RUNS, timedelta(seconds=1))
    totals = {
        "stopped": INSTANCES_PER_RUN,
        "instances": INSTANCES_PER_RUN,
        "estimated_savings": 293.0,
        "currency": "USD",
    }
    blobs = {}
    for i in range(RUNS):
        started = min(first + step * i, now - timedelta(minutes=5))
        kind = "shutdown" if i % 2 else "reconcile"
        run = report(f"run-{i:04d}", started, INSTANCES_PER_RUN, totals=totals)
        blobs[blob_name(kind, started, f"run-{i:04d}")] = as_bytes(run)
    blobs["reconcile/state.json"] = b'{"last_evaluated": null}'
    return blobs


def test_a_thousand_runs_and_a_run_of_10000_instances_answer_fast_small_and_lean(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = tmp_path_factory.mktemp("dashboard-scale")
    host = start_devhost(data, SETTINGS, workers=1)
    try:
        host.request("GET", "/api/dashboard?month=1999-01")  # the page's code is loaded and warm, nothing is read
        now = datetime.now(UTC).replace(microsecond=0)
        upload_all(host, _a_month_of_runs(now))
        big = report("fleet-10k", now, BIG_RUN, totals={"stopped": BIG_RUN - 7, "failed": 7, "instances": BIG_RUN})
        upload_all(host, {blob_name("shutdown", now, "fleet-10k"): as_bytes(big)})  # the newest run, saved last

        before = _rss(host)
        first_ever, _ = _timed(host, "/api/dashboard")  # reads 1,001 heads and writes the month's index
        grown = _rss(host) - before
        warm = statistics.median(_timed(host, "/api/dashboard")[0] for _ in range(3))
        savings_time, savings = _timed(host, f"/api/savings?month={now:%Y-%m}")
        full_time, full = _timed(host, "/api/dashboard?run=fleet-10k&format=json")
    finally:
        host.stop()
    # A new process (a restart, another Azure instance): it reads the month's index, not 1,001 reports.
    again = start_devhost(data, SETTINGS, workers=1, azurite_port=host.azurite_port)
    try:
        again.request("GET", "/api/dashboard?month=1999-01")
        cold, page = _timed(again, "/api/dashboard")
    finally:
        again.stop()

    figures = {
        "runs": RUNS + 1,
        "instances_per_run": INSTANCES_PER_RUN,
        "largest_run_instances": BIG_RUN,
        "first_view_ever_seconds": round(first_ever, 3),
        "first_view_of_a_new_process_seconds": round(cold, 3),
        "warm_view_seconds": round(warm, 3),
        "page_bytes": len(page),
        "host_rss_growth_first_view_mib": round(grown / 2**20, 1),
        "savings_seconds": round(savings_time, 3),
        "full_report_seconds": round(full_time, 3),
        "full_report_bytes": len(full),
    }
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=1))
    print("dashboard at scale:", figures)

    text = page.decode()
    assert "fleet-10k" in text and "Instances by outcome: stopped: 9993 · failed: 7." in text
    assert f"The first 200 of {BIG_RUN} instances" in text and "run=fleet-10k&amp;format=json" in text
    assert "run=state" not in text and "The 100 most recent of 1001 runs saved since" in text
    assert json.loads(full)["totals"]["instances"] == BIG_RUN and len(json.loads(full)["instances"]) == BIG_RUN
    assert json.loads(savings)["reports"] == RUNS + 1
    assert len(page) < 1_000_000
    assert grown < 64 * 2**20, f"the first view kept {grown / 2**20:.0f} MiB"
    # The goal is 1 s. The machine is shared by several test runs at once: the views are held to 1.5 s, and the
    # very first view (which reads every head once, about 2 ms of CPU each) to 10 s.
    assert warm < 1.0 and cold < 1.5 and first_ever < 10.0, figures
