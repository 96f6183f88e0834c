"""A report's head read without its instances, and a month's savings summed per currency from the heads, for every
shape a report has had (before savings, one currency, per currency, mixed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.compute.report_head import ReportFormatError, parse_head
from shared.compute.run_reports import ListedReport, report_blob_parts
from shared.compute.savings_month import RunSavings, savings_by_currency, summarize
from shared.web.dashboard_data import content_disposition


def _report(instances: int, *, tail: dict[str, Any] | None = None, indent: int | None = None) -> bytes:
    data: dict[str, Any] = {
        "instance_id": "run-1",
        "dry_run": False,
        "totals": {"stopped": instances, "estimated_savings_by_currency": {"USD": 1.5}},
        "arm_requests": {"reads": 2, "writes": instances},
        "workspaces": [{"workspace": f"sub/rg/ws-{i}", "instances": 1, "error": None} for i in range(3)],
        "instances": [{"name": f"ci-{i:05d}", "outcome": "stopped", "reason": "ü" * 40} for i in range(instances)],
    }
    data.update(tail or {})
    return json.dumps(data, indent=indent).encode()


class Reads:
    """The report's bytes, read by range as storage serves them, counting what was asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return self.data[start:end]

    @property
    def bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)


def test_the_head_of_a_10000_instance_report_is_one_small_read() -> None:
    data = _report(10_000)
    reads = Reads(data)
    head = parse_head(reads, len(data), needs=("totals",))
    assert len(data) > 1_000_000 and reads.bytes <= 8 * 1024 and len(reads.ranges) == 1
    assert head.fields["totals"]["stopped"] == 10_000 and "instances" not in head.fields
    assert head.more_instances and not head.complete


@pytest.mark.parametrize("indent", [None, 1])
def test_the_first_rows_are_read_as_far_as_needed(indent: int | None) -> None:
    data = _report(10_000, indent=indent)
    reads = Reads(data)
    head = parse_head(reads, len(data), rows=200)
    assert [i["name"] for i in head.first_instances] == [f"ci-{i:05d}" for i in range(200)]
    assert head.more_instances and reads.bytes < 120_000


def test_a_field_after_the_instances_is_reached_when_needed_keeping_none_of_them() -> None:
    data = _report(5_000, tail={"window": {"after": "2026-11-30T07:00:00+00:00"}, "report_error": None})
    head = parse_head(Reads(data), len(data), rows=2, needs=("totals", "window"))
    assert head.fields["window"] == {"after": "2026-11-30T07:00:00+00:00"} and head.complete
    assert len(head.first_instances) == 2 and head.more_instances


def test_a_small_report_is_read_whole_in_one_read_with_its_tail() -> None:
    data = _report(3, tail={"window": {"after": "x"}})
    reads = Reads(data)
    head = parse_head(reads, len(data), rows=10)
    assert head.complete and head.fields["window"] == {"after": "x"} and len(head.first_instances) == 3
    assert not head.more_instances and len(reads.ranges) == 1


@pytest.mark.parametrize("data", [b"", b"[1]", b'{"totals": ', b'{"totals": {"a": 1}', b"not json", b'{"a" 1}'])
def test_what_is_not_a_report_object_is_a_format_error(data: bytes) -> None:
    with pytest.raises(ReportFormatError):
        parse_head(Reads(data), len(data))


def test_only_run_reports_are_reports_never_state_or_working_blobs() -> None:
    assert report_blob_parts("shutdown/2026/11/30/run-1.json") == ListedReport(
        "shutdown", "2026-11-30", "run-1", "shutdown/2026/11/30/run-1.json"
    )
    assert report_blob_parts("reconcile/2026/11/30/reconcile-20261130T0700.json") is not None
    for name in (
        "reconcile/state.json",
        "reconcile/state/sub/rg/ws.json",
        "reconcile/state/0a1b/rg/ws-2026.json",
        "runs/run-1/abc.part.json",
        "shutdown/2026/11/run-1.json",
        "shutdown/2026/11/30/run-1.json.tmp",
        "index/2026-11.json",
    ):
        assert report_blob_parts(name) is None, name


# --- what a report saved, in each shape reports have had ---------------------------------------------------------

SHAPES: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {
    "before savings were estimated": ({"stopped": 2}, None),
    "one currency (estimated_savings + currency)": (
        {"stopped": 2, "estimated_savings": 3.5, "currency": "EUR"},
        {"EUR": 3.5},
    ),
    "nothing priced": ({"stopped": 2, "estimated_savings": 0.0, "currency": None}, {}),
    "per currency, one": (
        {"estimated_savings_by_currency": {"USD": 2.0}, "estimated_savings": 2.0, "currency": "USD"},
        {"USD": 2.0},
    ),
    "per currency, mixed": (
        {"estimated_savings_by_currency": {"USD": 2.0, "EUR": 1.0}, "estimated_savings": None, "currency": None},
        {"USD": 2.0, "EUR": 1.0},
    ),
    "a NaN from a bad price": ({"stopped": 1, "estimated_savings": float("nan"), "currency": "USD"}, None),
    "hand-made, no currency": ({"stopped": 1, "estimated_savings": 4.0}, {"unknown": 4.0}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_report_shape_says_what_it_saved_per_currency(shape: str) -> None:
    totals, expected = SHAPES[shape]
    assert savings_by_currency(totals) == expected


def test_a_month_sums_per_currency_per_kind_and_per_day_and_never_adds_currencies() -> None:
    runs = [
        RunSavings.of(
            "shutdown", "2026-11-03", {"totals": {"stopped": 2, "estimated_savings": 1.25, "currency": "USD"}}
        ),
        RunSavings.of(
            "reconcile",
            "2026-11-03",
            {"totals": {"stopped": 1, "started": 1, "estimated_savings_by_currency": {"USD": 2.5, "EUR": 1.0}}},
        ),
        RunSavings.of("reconcile", "2026-11-04", {"totals": {"stopped": 1}}),  # before savings were estimated
        RunSavings.of(
            "shutdown",
            "2026-11-05",
            {"dry_run": True, "totals": {"stopped": 9, "estimated_savings": 99.0, "currency": "USD"}},
        ),
        RunSavings.of(
            "shutdown", "2026-10-31", {"totals": {"stopped": 1, "estimated_savings": 7.0, "currency": "USD"}}
        ),
    ]
    month = summarize("2026-11", runs, ["shutdown/2026/11/06/broken.json"]).to_dict()
    assert month == {
        "measured": None,  # summarize sums the estimate; with_measured adds what was measured
        "month": "2026-11",
        "estimated_savings": None,  # two currencies: no one number
        "currency": None,
        "estimated_savings_by_currency": {"EUR": 1.0, "USD": 3.75},
        "by_kind": {"shutdown": 1.25, "reconcile": None},
        "by_kind_by_currency": {"shutdown": {"USD": 1.25}, "reconcile": {"EUR": 1.0, "USD": 2.5}},
        "by_day": {"2026-11-03": {"EUR": 1.0, "USD": 3.75}},
        "reports": 3,
        "stopped": 4,
        "started": 1,
        "reports_without_estimate": 1,
        "unreadable_reports": ["shutdown/2026/11/06/broken.json"],
    }
    one = summarize("2026-11", runs[:1]).to_dict()
    assert (one["estimated_savings"], one["currency"], one["by_kind"]) == (
        1.25,
        "USD",
        {"shutdown": 1.25, "reconcile": 0.0},
    )
    empty = summarize("2026-12", runs).to_dict()
    assert (empty["estimated_savings"], empty["currency"], empty["reports"]) == (0.0, None, 0)


def test_a_download_names_its_file_as_rfc_6266_says() -> None:
    assert content_disposition('dir/Größe "x".csv') == (
        "attachment; filename=\"Gr__e _x_.csv\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe%20%22x%22.csv"
    )
    assert content_disposition("a\\b%20.csv", "inline") == "inline; filename=\"b_20.csv\"; filename*=UTF-8''b%2520.csv"
