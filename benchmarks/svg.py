"""A small dependency-free SVG line plot (axes, ticks, legend), enough for the benchmark page's two plots."""

from __future__ import annotations

import math
from html import escape

from benchmarks.core import Plot

WIDTH, HEIGHT = 640, 380
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60
LEGEND_ROW = 18
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + 1
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Labelled ticks of a log axis enclosing [low, high] (> 0): 1-2-5 steps up to four decades, else powers of ten.

    The first tick is at or below `low` and the last at or above `high`, so no point sits outside the labels.
    """
    start, stop = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multipliers = (1, 2, 5) if stop - start <= 4 else (1,)
    ticks = [m * 10.0**e for e in range(start, stop + 1) for m in multipliers]
    below = [t for t in ticks if t <= low * 1.0001]
    above = [t for t in ticks if t >= high / 1.0001]
    first, last = (below[-1] if below else ticks[0]), (above[0] if above else ticks[-1])
    inside = [t for t in ticks if first <= t <= last]
    return inside if len(inside) >= 2 else [10.0**start, 10.0**stop]


def fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 and value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


class _Axis:
    def __init__(self, values: list[float], log: bool, pixel_low: float, pixel_high: float) -> None:
        self.log = log and all(v > 0 for v in values)
        low, high = min(values), max(values)
        if self.log:
            self.ticks = log_ticks(low, high)
            low, high = min(low, self.ticks[0]), max(high, self.ticks[-1])
            self.low, self.high = math.log10(low), math.log10(high)
        else:
            self.ticks = nice_ticks(min(0.0, low), high)
            self.low, self.high = self.ticks[0], self.ticks[-1]
        self.pixel_low, self.pixel_high = pixel_low, pixel_high

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        span = (self.high - self.low) or 1.0
        return self.pixel_low + (v - self.low) / span * (self.pixel_high - self.pixel_low)


# Each series has its own marker and dash pattern, and is nudged sideways by a few pixels: where two series have
# the same values, both stay visible (different shapes side by side) instead of one hiding the other.
MARKERS = ("circle", "square", "triangle", "diamond")
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 4")
DODGE = 4.0
RangeMap = dict[float, tuple[float, float]]


def _marker(shape: str, x: float, y: float, color: str, hollow: bool) -> str:
    fill = "white" if hollow else color
    style = f'fill="{fill}" stroke="{color}" stroke-width="1.6"'
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" {style}/>'
    if shape == "triangle":
        return f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}" {style}/>'
    if shape == "diamond":
        corners = f"{x:.1f},{y - 5.5:.1f} {x + 5.5:.1f},{y:.1f} {x:.1f},{y + 5.5:.1f} {x - 5.5:.1f},{y:.1f}"
        return f'<polygon points="{corners}" {style}/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" {style}/>'


def render_svg(plot: Plot, ranges: list[RangeMap] | None = None) -> str:
    """The plot as a standalone SVG document; `ranges[i][x]` is the min-max of series i at x (drawn as a bar)."""
    ranges = ranges or [{} for _ in plot.series]
    xs = [x for s in plot.series for x, _ in s.points]
    ys = [y for s in plot.series for _, y in s.points]
    ys += [v for r in ranges for low_high in r.values() for v in low_high]
    if not xs:
        xs, ys = [0.0, 1.0], [0.0, 1.0]
    x_axis = _Axis(xs, plot.log_x, LEFT, WIDTH - RIGHT)
    y_axis = _Axis(ys, plot.log_y, HEIGHT - BOTTOM, TOP)
    has_ranges = any(ranges)
    # The legend goes below the plot, one row per series, so it never hides a line or a point.
    rows = len(plot.series) + (1 if has_ranges else 0)
    total_height = HEIGHT + LEGEND_ROW * rows + 6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total_height}" '
        f'viewBox="0 0 {WIDTH} {total_height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{total_height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(plot.title)}</text>',
    ]
    for tick in x_axis.ticks:
        px = x_axis(tick)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{fmt_tick(tick)}</text>')
    for tick in y_axis.ticks:
        py = y_axis(tick)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{fmt_tick(tick)}</text>')
    out.append(
        f'<polyline points="{LEFT},{TOP} {LEFT},{HEIGHT - BOTTOM} {WIDTH - RIGHT},{HEIGHT - BOTTOM}" '
        'fill="none" stroke="black"/>'
    )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 18}" text-anchor="middle">{escape(plot.x_label)}</text>'
    )
    mid_y = (TOP + HEIGHT - BOTTOM) / 2
    out.append(
        f'<text x="16" y="{mid_y}" text-anchor="middle" transform="rotate(-90 16 {mid_y})">'
        f"{escape(plot.y_label)}</text>"
    )
    lines_out: list[str] = []
    marks_out: list[str] = []
    legend: list[str] = []
    count = len(plot.series)
    for index, series in enumerate(plot.series):
        color = COLORS[index % len(COLORS)]
        shape = MARKERS[index % len(MARKERS)]
        offset = (index - (count - 1) / 2) * DODGE
        points = sorted(series.points)
        coords = " ".join(f"{x_axis(x) + offset:.1f},{y_axis(y):.1f}" for x, y in points)
        pattern = DASHES[index % len(DASHES)] if series.dashed else ""
        pattern = pattern or ("6 4" if series.dashed else "")
        dash = f' stroke-dasharray="{pattern}"' if pattern else ""
        if len(points) > 1:
            lines_out.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" '
                f'stroke-opacity="0.85"{dash}/>'
            )
        for x, y in points:
            px = x_axis(x) + offset
            low_high = ranges[index].get(x) if index < len(ranges) else None
            if low_high is not None and low_high[0] != low_high[1]:
                top, bottom = y_axis(low_high[1]), y_axis(low_high[0])
                marks_out.append(
                    f'<path d="M{px:.1f},{top:.1f}V{bottom:.1f}M{px - 3:.1f},{top:.1f}H{px + 3:.1f}'
                    f'M{px - 3:.1f},{bottom:.1f}H{px + 3:.1f}" stroke="{color}" stroke-width="1.4" fill="none"/>'
                )
            marks_out.append(_marker(shape, px, y_axis(y), color, hollow=series.dashed))
        ly = HEIGHT + index * LEGEND_ROW
        lx = LEFT
        legend.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 26}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>'
            + _marker(shape, lx + 13, ly, color, hollow=series.dashed)
            + f'<text x="{lx + 34}" y="{ly + 4}">{escape(series.label)}</text>'
        )
    if has_ranges:
        ly = HEIGHT + count * LEGEND_ROW
        legend.append(
            f'<text x="{LEFT}" y="{ly + 4}" fill="#555">'
            "Markers: median of the runs; bars: min–max over the runs.</text>"
        )
    out += lines_out
    out += marks_out
    out += legend
    out.append("</svg>")
    return "\n".join(out) + "\n"
