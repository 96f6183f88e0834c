"""The benchmark harness's statistics, goal verdicts and page rendering, on synthetic numbers (nothing is timed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.core import Goal, Measure, Plot, Result, Series, load_results, percentile, summarize
from benchmarks.render import fmt, render_page, write_page
from benchmarks.scoring_data import generate, size_label
from benchmarks.svg import nice_ticks, render_svg


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (list(range(1, 1001)), 99, 990),  # nearest rank: an observed value, not an interpolation
        (list(range(1, 1001)), 50, 500),
        ([5.0], 99, 5.0),
        ([3.0, 1.0, 2.0], 100, 3.0),
        ([3.0, 1.0, 2.0], 0, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 99)


def test_summary_reports_median_and_range() -> None:
    assert summarize([4.0, 1.0, 3.0, 2.0]) == {"n": 4, "median": 2.5, "min": 1.0, "max": 4.0}
    assert summarize([]) == {"n": 0}


@pytest.mark.parametrize(
    ("samples", "op", "threshold", "stat", "status", "value"),
    [
        ([0.4, 0.5, 0.6], "<", 1.0, "median", "met", 0.5),
        ([0.9, 1.2, 1.5], "<", 1.0, "median", "not met", 1.2),
        ([300.0, 650.0, 310.0], "<", 600.0, "max", "not met", 650.0),  # one bad run fails a worst-case goal
        ([9.0, 8.0, 12.0], ">=", 8.0, "median", "met", 9.0),
        ([], "<", 1.0, "median", "not measured", None),
    ],
)
def test_goal_verdicts(
    samples: list[float], op: str, threshold: float, stat: str, status: str, value: float | None
) -> None:
    goal = Goal("g", "m", op, threshold, stat)  # type: ignore[arg-type]
    assert goal.evaluate({"m": Measure("m", "M", "s", samples)}) == (status, value)


def test_missing_measure_is_not_measured_rather_than_met() -> None:
    assert Goal("g", "absent", "<", 1.0).evaluate({}) == ("not measured", None)


def _synthetic() -> Result:
    result = Result("latency", "Latency", "Synthetic numbers.", parameters={"requests": 1000, "sizes": ["1", "2"]})
    result.measure("floor_p99", "floor, p99", "ms", baseline_only=True).samples = [2.0, 2.5, 3.0]
    result.measure("hook_p99", "webhook, p99", "ms", baseline="floor_p99").samples = [40.0, 70.0, 60.0]
    result.goals = [Goal("p99 under 50 ms", "hook_p99", "<", 50.0)]
    result.plots = [Plot("lat.svg", "Latency", "n", "ms", [Series("hook", [(1, 40.0), (10, 60.0)])], log_x=True)]
    result.notes = ["a note"]
    result.started = "2026-01-01T00:00:00Z"
    result.machine = {"cores": 2, "cpu": "Test CPU", "ram_gib": 24, "python": "3.11.7"}
    return result


def test_page_shows_each_figure_beside_its_baseline_and_the_missed_goal() -> None:
    page = render_page([_synthetic()], "../results/")
    # Baseline-only measures are not rows of their own; they sit in the baseline column of what they compare with.
    assert "| webhook, p99 | 60.0 ms | 40.0–70.0 | 3 | floor, p99 | 2.50 ms (2.00–3.00) | 24.00x |" in page
    assert not [line for line in page.splitlines() if line.startswith("| floor, p99 |")]
    assert "| `latency` | p99 under 50 ms | **NOT met** | 60.0 ms |" in page
    assert "![Latency](../results/lat.svg)" in page
    assert "2 cores (Test CPU), 24 GiB RAM" in page
    assert "- a note" in page


def test_quick_results_are_labelled_as_such() -> None:
    result = _synthetic()
    result.quick = True
    assert "quick mode" in render_page([result], "")


def test_results_round_trip_through_json_and_render_to_files(tmp_path: Path) -> None:
    results_dir, doc = tmp_path / "results", tmp_path / "docs" / "benchmarks.md"
    _synthetic().save(results_dir)
    (results_dir / "run.json").write_text(json.dumps({"started": "x"}))  # not a result: ignored
    loaded = load_results(results_dir)
    assert [r.name for r in loaded] == ["latency"]
    assert loaded[0].by_key()["hook_p99"].samples == [40.0, 70.0, 60.0]
    assert json.loads((results_dir / "latency.json").read_text())["measures"][1]["summary"]["median"] == 60.0

    write_page(loaded, doc, results_dir, {"started": "x", "duration_seconds": 600, "benchmarks": ["latency"]})
    text = doc.read_text()
    assert "took 10.0 min" in text
    assert "![Latency](../results/lat.svg)" in text
    ET.fromstring((results_dir / "lat.svg").read_text())  # well-formed SVG


def test_svg_plot_has_a_line_per_series_and_log_ticks() -> None:
    plot = Plot(
        "p.svg",
        "Throughput",
        "MB",
        "MB/s",
        [Series("a", [(10, 50.0), (100, 80.0), (1000, 90.0)]), Series("b <pandas>", [(10, 5.0)], dashed=True)],
        log_x=True,
    )
    root = ET.fromstring(render_svg(plot))
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "b <pandas>" in texts
    assert {"10", "100", "1,000"} <= set(texts)
    assert len([p for p in root.iter(f"{ns}polyline") if p.get("stroke") != "black"]) == 1


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 9.3, [0, 2, 4, 6, 8, 10]), (0, 1000, [0, 200, 400, 600, 800, 1000]), (0, 0.37, [0, 0.1, 0.2, 0.3, 0.4])],
)
def test_nice_ticks(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == expected


@pytest.mark.parametrize(
    ("value", "text"), [(None, "—"), (0.000123, "0.000123"), (0.4843, "0.484"), (2.345, "2.35"), (1234.5, "1,234")]
)
def test_number_format(value: float | None, text: str) -> None:
    assert fmt(value) == text


def test_generated_scoring_input_is_whole_rows_under_the_size(tmp_path: Path) -> None:
    made = generate(200_000, tmp_path)
    data = made.path.read_bytes()
    assert len(data) == made.size <= 200_000
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert lines[0] == "id,height,name,email"
    assert len(lines) - 1 == made.rows
    assert generate(200_000, tmp_path) == made  # cached, not regenerated
    assert size_label(10**9) == "1 GB"
    assert size_label(5 * 10**6) == "5 MB"
