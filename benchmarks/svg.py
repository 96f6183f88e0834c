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
    """Powers of ten (and 2x, 5x when the range is short) covering [low, high], both > 0."""
    start, stop = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multipliers = (1, 2, 5) if stop - start <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(start, stop + 1) for m in multipliers]
    inside = [t for t in ticks if low / 1.0001 <= t <= high * 1.0001]
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


def render_svg(plot: Plot) -> str:
    """The plot as a standalone SVG document."""
    xs = [x for s in plot.series for x, _ in s.points]
    ys = [y for s in plot.series for _, y in s.points]
    if not xs:
        xs, ys = [0.0, 1.0], [0.0, 1.0]
    x_axis = _Axis(xs, plot.log_x, LEFT, WIDTH - RIGHT)
    y_axis = _Axis(ys, plot.log_y, HEIGHT - BOTTOM, TOP)
    # The legend goes below the plot, one row per series, so it never hides a line or a point.
    total_height = HEIGHT + LEGEND_ROW * len(plot.series) + 6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total_height}" '
        f'viewBox="0 0 {WIDTH} {total_height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{total_height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(plot.title)}</text>',
    ]
    for tick in x_axis.ticks:
        px = x_axis(tick)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>')
        out.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{fmt_tick(tick)}</text>')
    for tick in y_axis.ticks:
        py = y_axis(tick)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#eee"/>')
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
    legend: list[str] = []
    for index, series in enumerate(plot.series):
        color = COLORS[index % len(COLORS)]
        points = sorted(series.points)
        coords = " ".join(f"{x_axis(x):.1f},{y_axis(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        if len(points) > 1:
            lines_out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in points:
            lines_out.append(f'<circle cx="{x_axis(x):.1f}" cy="{y_axis(y):.1f}" r="3.5" fill="{color}"/>')
        ly = HEIGHT + index * LEGEND_ROW
        lx = LEFT
        legend.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{lx + 28}" y="{ly + 4}">{escape(series.label)}</text>'
        )
    out += lines_out
    out += legend
    out.append("</svg>")
    return "\n".join(out) + "\n"
