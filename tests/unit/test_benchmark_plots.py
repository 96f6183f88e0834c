"""Benchmark plots a person can read: labelled log ticks around the data, min-max bars from the runs, and series
with equal values both visible (own marker shape, nudged apart)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from benchmarks.core import Measure, Plot, Result, Series
from benchmarks.render import point_ranges
from benchmarks.svg import log_ticks, render_svg

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (3.56, 1024.2, [2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]),  # encloses both ends: no point off the scale
        (10, 1000, [10, 20, 50, 100, 200, 500, 1000]),
        (0.5, 3e6, [0.1, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000]),  # many decades: powers of 10
    ],
)
def test_log_ticks_enclose_the_data_and_are_labelled_in_1_2_5_steps(
    low: float, high: float, expected: list[float]
) -> None:
    ticks = log_ticks(low, high)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= low and ticks[-1] >= high


def _result() -> tuple[Result, Plot]:
    result = Result("r", "R", "d")
    result.measures = [
        Measure("wall_50", "wall", "s", [3.8, 3.4, 3.6]),
        Measure("secs_10", "secs", "s", [0.75, 0.68, 0.70]),
        Measure("one_run", "seq", "s", [102.4]),
    ]
    plot = Plot(
        "p.svg",
        "T",
        "x",
        "y",
        [
            Series("wall", [(50, 3.6)]),
            Series("rate", [(10, 10 / 0.70)]),
            Series("seq", [(50, 102.4)], dashed=True),
            Series("theory", [(50, 100.0)], dashed=True),
        ],
    )
    return result, plot


def test_each_median_gets_the_min_max_of_its_runs_and_a_bar_on_the_plot() -> None:
    result, plot = _result()
    ranges = point_ranges(result, plot)
    assert ranges[0] == {50: (3.4, 3.8)}
    assert ranges[1][10] == pytest.approx((10 / 0.75, 10 / 0.68))  # a rate: x / slowest .. x / fastest
    assert ranges[2] == {} and ranges[3] == {}  # one run, or no run at all: no bar
    root = ET.fromstring(render_svg(plot, ranges))
    bars = [p for p in root.iter(f"{NS}path")]
    assert len(bars) == 2
    assert "min–max" in "".join(t.text or "" for t in root.iter(f"{NS}text"))


def test_series_with_the_same_values_stay_visible_side_by_side() -> None:
    plot = Plot(
        "p.svg",
        "T",
        "x",
        "y",
        [
            Series("measured", [(50, 100.0), (200, 400.0)], dashed=True),
            Series("theory", [(50, 100.0), (200, 400.0)], dashed=True),
        ],
        log_y=True,
    )
    svg = render_svg(plot)
    root = ET.fromstring(svg)
    lines = [p for p in root.iter(f"{NS}polyline") if p.get("stroke") != "black"]
    assert len(lines) == 2
    assert lines[0].get("points") != lines[1].get("points")  # nudged apart, not drawn on top of each other
    assert lines[0].get("stroke-dasharray") != lines[1].get("stroke-dasharray")
    # Different marker shapes: circles and squares, not two circles in one place.
    assert len(list(root.iter(f"{NS}circle"))) == 3  # two points and the legend's
    assert len(re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="8"', svg)) == 3
    labels = {t.text for t in root.iter(f"{NS}text")}
    assert {"50", "100", "200", "500"} <= labels
