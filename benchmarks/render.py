"""Renders docs/benchmarks.md (and the plots' SVG files) from the JSON results, and nothing else."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.core import Measure, Plot, Result
from benchmarks.svg import RangeMap, render_svg


def fmt(value: float | None) -> str:
    """About three significant digits, no exponent for the usual ranges."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def fmt_range(samples: Sequence[float]) -> str:
    if not samples:
        return "—"
    low, high = min(samples), max(samples)
    return fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"


def with_unit(text: str, unit: str) -> str:
    if text == "—" or not unit:
        return text
    return f"{text}{unit}" if unit in {"x", "%"} else f"{text} {unit}"


def ratio_text(measure: Measure, baseline: Measure) -> str:
    if measure.median is None or not baseline.median:
        return "—"
    return f"{measure.median / baseline.median:.2f}x"


def measures_table(result: Result) -> str:
    """One row per measure: median, range over the runs, and its same-run baseline beside it."""
    by_key = result.by_key()
    lines = [
        "| Measure | Median | Min–max | Runs | Baseline (same run) | Baseline median (min–max) | Ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for measure in result.measures:
        if measure.baseline_only:
            continue
        baseline = by_key.get(measure.baseline) if measure.baseline else None
        if baseline is not None:
            base_cells = (
                baseline.label,
                f"{with_unit(fmt(baseline.median), baseline.unit)} ({fmt_range(baseline.samples)})",
                ratio_text(measure, baseline),
            )
        else:
            base_cells = ("—", "—", "—")
        lines.append(
            "| "
            + " | ".join(
                (
                    measure.label,
                    with_unit(fmt(measure.median), measure.unit),
                    fmt_range(measure.samples),
                    str(len(measure.samples)),
                    *base_cells,
                )
            )
            + " |"
        )
    return "\n".join(lines)


def goal_rows(result: Result) -> list[tuple[str, str, str]]:
    """(goal, status, figure) of each goal of `result`; the figure is the median unless the goal says otherwise."""
    by_key = result.by_key()
    rows: list[tuple[str, str, str]] = []
    for goal in result.goals:
        status, value = goal.evaluate(by_key)
        measure = by_key.get(goal.measure)
        figure = with_unit(fmt(value), measure.unit) if measure is not None and value is not None else "—"
        if goal.stat != "median" and figure != "—":
            figure += f" ({goal.stat} of {len(measure.samples) if measure else 0} runs)"
        rows.append((goal.text, status, figure))
    return rows


def _status_cell(status: str) -> str:
    return {"met": "**met**", "not met": "**NOT met**"}.get(status, "not measured")


def machine_line(machine: Mapping[str, Any]) -> str:
    line = (
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), {machine.get('ram_gib', '?')} GiB RAM, "
        f"Python {machine.get('python', '?')}, {machine.get('platform', '?')}, commit {machine.get('commit', '?')}"
    )
    load = machine.get("load_average_1min")
    if load:
        line += f"; 1-min load average {load[0]} before, {load[1]} after (other work on the machine shows here)"
    return line


def _parameters(parameters: Mapping[str, Any]) -> str:
    shown = []
    for name, value in parameters.items():
        text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        shown.append(f"{name} = {text}")
    return "; ".join(shown)


def render_section(result: Result, plot_prefix: str) -> str:
    parts = [f"## {result.title} (`{result.name}`)", "", result.description, ""]
    run = f"Run {result.started}, {result.duration_seconds:.0f} s"
    if result.quick:
        run += ", **quick mode (small sizes; not the reference figures)**"
    parts += [f"*{run}. Machine: {machine_line(result.machine)}.*", ""]
    if result.parameters:
        parts += [f"Parameters: {_parameters(result.parameters)}.", ""]
    parts += [measures_table(result), ""]
    goals = goal_rows(result)
    if goals:
        parts += ["| Goal | Status | Figure |", "|---|---|---:|"]
        parts += [f"| {text} | {_status_cell(status)} | {figure} |" for text, status, figure in goals]
        parts.append("")
    if result.notes:
        parts += ["Notes:", ""]
        parts += [f"- {note}" for note in result.notes]
        parts.append("")
    for plot in result.plots:
        parts += [f"![{plot.title}]({plot_prefix}{plot.file})", ""]
    return "\n".join(parts)


def render_page(results: Sequence[Result], plot_prefix: str, run_info: Mapping[str, Any] | None = None) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks`) from `benchmarks/results/*.json`; do not edit by hand.",
        "Every figure is the median over repeated runs with its min–max, next to a baseline measured in the same",
        "run on the same machine. A goal is judged on the median and shown as met or not met, never hidden.",
        "In the plots a marker is the median, a bar the min–max over the runs, and each series has its own marker",
        "and dash, nudged a few pixels sideways so that equal values stay visible.",
        "",
    ]
    if run_info:
        took = float(run_info.get("duration_seconds", 0.0))
        lines += [
            f"Last run: {run_info.get('started', '?')}, `{run_info.get('command', 'python -m benchmarks')}`, "
            f"took {took / 60:.1f} min ({', '.join(run_info.get('benchmarks', []))}).",
            "",
        ]
    if not results:
        lines += ["No results yet: run `make bench`.", ""]
        return "\n".join(lines)
    lines += ["## Goals", "", "| Benchmark | Goal | Status | Figure |", "|---|---|---|---:|"]
    for result in results:
        for text, status, figure in goal_rows(result):
            lines.append(f"| `{result.name}` | {text} | {_status_cell(status)} | {figure} |")
    lines.append("")
    for result in results:
        lines.append(render_section(result, plot_prefix))
    return "\n".join(lines).rstrip() + "\n"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)


def point_ranges(result: Result, plot: Plot) -> list[RangeMap]:
    """Min-max over the runs behind each plotted median, found among the result's measures.

    A plot stores medians only; the runs are in the measures. A point is a measure's median (its range is the
    samples' min-max) or a rate x / median (its range is x / max .. x / min). Points no measure explains (a
    theoretical line, an extrapolation from one run) get no range.
    """
    measures = [m for m in result.measures if len(m.samples) >= 2 and m.median]
    out: list[RangeMap] = []
    for series in plot.series:
        found: RangeMap = {}
        for x, y in series.points:
            for m in measures:
                median = float(m.median or 0.0)
                low, high = min(m.samples), max(m.samples)
                if _close(median, y):
                    found[x] = (low, high)
                    break
                if low > 0 and _close(x / median, y):
                    found[x] = (x / high, x / low)
                    break
        out.append(found)
    return out


def write_page(
    results: Sequence[Result], doc_path: Path, results_dir: Path, run_info: Mapping[str, Any] | None
) -> None:
    """Write the SVG plots beside the results and the page that links them."""
    for result in results:
        for plot in result.plots:
            (results_dir / plot.file).write_text(render_svg(plot, point_ranges(result, plot)), encoding="utf-8")
    prefix = os.path.relpath(results_dir, doc_path.parent).replace(os.sep, "/") + "/"
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(render_page(results, prefix, run_info), encoding="utf-8")
