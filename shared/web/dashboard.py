"""The operator's dashboard page: shutdown and reconcile runs, savings, schedules and scoring runs as one HTML page.

Pure rendering over plain data (saved reports, Durable status dicts, schedule overviews), so it is tested without a
host. Everything shown comes from user data (instance names, tags, file names): it goes through `_e` (HTML escape)
and nothing else. No script, no CDN: the page works offline; while a run is going on it refreshes itself.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

REPORT_KINDS = ("shutdown", "reconcile")
# Outcomes a person reads as "failed": a stop that did not end in time failed as much as one ARM refused.
FAILED_OUTCOMES = ("failed", "timed_out")
LIVE_STATUSES = ("Pending", "Running", "ContinueAsNew")
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


class DashboardInputError(ValueError):
    """A query parameter of the dashboard is malformed; the message names it and what was expected."""


@dataclass(frozen=True)
class SavedReport:
    """One shutdown or reconcile report as saved in the reports container."""

    kind: str
    blob: str
    data: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.data.get("instance_id") or _run_id_of_blob(self.blob))

    @property
    def started_at(self) -> str:
        return str(self.data.get("started_at") or "")

    @property
    def totals(self) -> Mapping[str, Any]:
        totals = self.data.get("totals")
        return totals if isinstance(totals, Mapping) else {}

    def count(self, *outcomes: str) -> int:
        return sum(_int(self.totals.get(o)) for o in outcomes)

    @property
    def savings(self) -> float | None:
        """The run's estimated savings, or None when the report carries no estimate (older reports)."""
        value = self.totals.get("estimated_savings")
        if value is None:
            entries = [i.get("estimated_savings") for i in self.instances if isinstance(i, Mapping)]
            known = [v for v in entries if isinstance(v, int | float)]
            return float(sum(known)) if known else None
        return _float(value)

    @property
    def currency(self) -> str:
        currency = self.totals.get("currency")
        if currency:
            return str(currency)
        for entry in self.instances:
            if isinstance(entry, Mapping) and entry.get("currency"):
                return str(entry["currency"])
        return ""

    @property
    def instances(self) -> list[Mapping[str, Any]]:
        items = self.data.get("instances")
        return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _run_id_of_blob(blob: str) -> str:
    return blob.rsplit("/", 1)[-1].removesuffix(".json")


def report_kind_prefix(kind: str) -> str:
    """Where reports of `kind` are saved in the reports container: `shutdown/` and `reconcile/`."""
    return f"{kind}/"


def parse_month(raw: str | None, now: datetime) -> str:
    """`?month=YYYY-MM`, default the current month (UTC)."""
    if raw is None or raw == "":
        return f"{now.astimezone(UTC):%Y-%m}"
    if not MONTH_RE.match(raw):
        raise DashboardInputError(f"query parameter month={raw!r} is malformed: expected YYYY-MM, e.g. 2026-11")
    return raw


def parse_run(raw: str | None) -> str | None:
    """`?run=<instance id>` of a saved report, or None for the latest run."""
    if raw is None or raw == "":
        return None
    if not RUN_ID_RE.match(raw):
        raise DashboardInputError(
            f"query parameter run={raw!r} is malformed: expected the instance id of a shutdown or reconcile run"
        )
    return raw


# --- scoring runs from the Durable client's status dicts ------------------------------------------------------


@dataclass(frozen=True)
class ScoringRun:
    """One scoring orchestration as a person follows it: file, progress, counts, outcome, files written."""

    run_id: str
    status: str
    source: str
    created: str
    updated: str
    stage: str
    chunks_done: int | None
    chunks_total: int | None
    rows: int | None
    bad_rows: int | None
    error: str
    predictions: str
    errors_file: str
    error_document: str = ""  # why a failed run could not score the file (shared/scoring/error_document.py)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


def scoring_run_from_status(status: Mapping[str, Any]) -> ScoringRun:
    """A scoring run from a Durable status body (name, instanceId, runtimeStatus, input, customStatus, output)."""
    run_input = _mapping(status.get("input"))
    request = _mapping(run_input.get("request"))
    custom = _mapping(status.get("customStatus"))
    output = status.get("output")
    result: Mapping[str, Any] = output if isinstance(output, Mapping) else {}
    source = ""
    if request.get("container") or request.get("name"):
        source = f"{request.get('container', '')}/{request.get('name', '')}"
    source = str(result.get("source") or source)
    runtime = str(status.get("runtimeStatus") or "")
    error = ""
    if runtime in ("Failed", "Terminated"):
        error = str(output) if output is not None and not isinstance(output, Mapping) else runtime
    predictions = ""
    if result.get("output_container") and result.get("output_name") and runtime == "Completed":
        predictions = f"{result['output_container']}/{result['output_name']}"
    errors_file = ""
    if result.get("errors_container") and result.get("errors_name"):
        errors_file = f"{result['errors_container']}/{result['errors_name']}"
    return ScoringRun(
        run_id=str(status.get("instanceId") or ""),
        status=runtime,
        source=source,
        created=str(status.get("createdTime") or ""),
        updated=str(status.get("lastUpdatedTime") or ""),
        stage=str(custom.get("stage") or ""),
        chunks_done=_opt_int(custom.get("chunks_done")),
        chunks_total=_opt_int(custom.get("chunks_total")),
        rows=_opt_int(result.get("rows", custom.get("rows"))),
        bad_rows=_opt_int(result.get("bad_rows")),
        error=error,
        predictions=predictions,
        errors_file=errors_file,
        error_document=str(custom.get("error_document") or "") if runtime == "Failed" else "",
    )


# --- the page --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """Everything the page shows, gathered by the trigger."""

    reports: Sequence[SavedReport]  # newest first
    selected: SavedReport | None
    month: str
    scoring: Sequence[ScoringRun]
    schedules: Sequence[Mapping[str, Any]] | None  # None: the app has no schedules feature configured
    now: datetime
    live_shutdowns: Sequence[Mapping[str, Any]] = ()
    notes: Sequence[str] = ()  # problems reading a source, shown instead of that section's data
    max_runs: int = 100
    total_runs: int = 0  # runs saved in all (the page reads only the recent ones and the month's)


LinkFn = Callable[[Mapping[str, str]], str]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _when(iso: str) -> str:
    """`2026-11-28 22:00 UTC` from an ISO 8601 time; the text itself when it is not one."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _money(value: float | None, currency: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f} {currency}".strip()


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.sel td{background:#fff8c5}.muted{color:#57606a}.bad{color:#b42318;font-weight:600}.ok{color:#1a7f37}
.note{background:#fff1e5;border:1px solid #e0a96d;padding:.4rem .6rem;margin:.4rem 0}
progress{width:8rem}code{font-size:.9em}
"""


def render_page(page: Page, link: LinkFn) -> str:
    """The whole HTML document."""
    live = any(r.live for r in page.scoring) or bool(page.live_shutdowns)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        # Links carry `?code=` (the function key): never send them on as a Referer.
        "<meta name=referrer content=no-referrer>",
        # Refresh while something runs, so progress moves without any script.
        "<meta http-equiv=refresh content=10>" if live else "",
        "<title>Operations dashboard</title><style>",
        CSS,
        "</style></head><body>",
        "<h1>Operations dashboard</h1>",
        f"<p class=muted>As of {_e(_when(page.now.isoformat()))}."
        + (" Refreshes every 10 s while a run is in progress." if live else "")
        + "</p>",
    ]
    parts += [f"<p class=note>{_e(n)}</p>" for n in page.notes]
    parts.append(_runs_section(page, link))
    parts.append(_selected_section(page))
    parts.append(_savings_section(page, link))
    parts.append(_schedules_section(page.schedules))
    parts.append(_scoring_section(page.scoring, link))
    parts.append("</body></html>")
    return "".join(parts)


def _runs_section(page: Page, link: LinkFn) -> str:
    out = ["<section id=runs><h2>Shutdown and reconcile runs</h2>"]
    for live in page.live_shutdowns:
        custom = _mapping(live.get("customStatus"))
        out.append(
            f"<p class=note>Running now: {_e(live.get('name'))} <code>{_e(live.get('instanceId'))}</code> "
            f"since {_e(_when(str(live.get('createdTime') or '')))}"
            + (f", {_e(custom.get('done'))} of {_e(custom.get('instances'))} instances done" if custom else "")
            + "</p>"
        )
    if not page.reports:
        out.append("<p class=muted>No shutdown or reconcile run has saved a report yet.</p></section>")
        return "".join(out)
    has_arm = any(isinstance(r.totals.get("arm_requests"), Mapping) for r in page.reports)
    out.append(
        "<table><thead><tr><th>When (start)</th><th>Kind</th><th>Trigger</th><th>Stopped</th><th>Started</th>"
        "<th>Skipped</th><th>Already stopped</th><th>Failed</th><th>Estimated savings</th>"
        + ("<th>ARM requests</th>" if has_arm else "")
        + "<th>Duration</th><th></th></tr></thead><tbody>"
    )
    selected = page.selected.run_id if page.selected else None
    for report in page.reports[: page.max_runs]:
        failed = report.count(*FAILED_OUTCOMES)
        arm = report.totals.get("arm_requests")
        arm_cell = ""
        if has_arm:
            arm_cell = (
                f"<td class=n>{_e(arm.get('reads', 0))} reads, {_e(arm.get('writes', 0))} writes</td>"
                if isinstance(arm, Mapping)
                else "<td class=muted>—</td>"
            )
        seconds = _float(report.data.get("seconds"))
        out.append(
            f"<tr{' class=sel' if report.run_id == selected else ''}>"
            f"<td>{_e(_when(report.started_at))}</td><td>{_e(report.kind)}"
            + (" <span class=muted>(dry run)</span>" if report.data.get("dry_run") else "")
            + f"</td><td>{_e(report.data.get('trigger', ''))}</td>"
            f"<td class=n>{report.count('stopped')}</td><td class=n>{report.count('started')}</td>"
            f"<td class=n>{report.count('skipped')}</td><td class=n>{report.count('already_stopped')}</td>"
            f"<td class=n{' bad' if failed else ''}>{failed}</td>"
            f"<td class=n>{_e(_money(report.savings, report.currency))}</td>{arm_cell}"
            f"<td class=n>{'' if seconds is None else f'{seconds:.1f} s'}</td>"
            f"<td><a href='{_e(link({'run': report.run_id}))}'>details</a></td></tr>"
        )
    out.append("</tbody></table>")
    total = max(page.total_runs, len(page.reports))
    if total > page.max_runs:
        out.append(f"<p class=muted>The {page.max_runs} most recent of {total} runs.</p>")
    out.append("</section>")
    return "".join(out)


INSTANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("workspace", "Workspace"),
    ("name", "Instance"),
    ("state_before", "State before"),
    ("decision", "Decision"),
    ("outcome", "Outcome"),
    ("reason", "Reason"),
    ("error", "Error"),
)
SAVINGS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("vm_size", "VM size"),
    ("hourly_price", "Price / hour"),
    ("estimated_hours_saved", "Hours saved"),
    ("estimated_savings", "Estimated savings"),
    ("price_source", "Price source"),
)


def _selected_section(page: Page) -> str:
    report = page.selected
    if report is None:
        return ""
    data = report.data
    title = "Latest run" if page.reports and report.run_id == page.reports[0].run_id else "Run"
    out = [
        f"<section id=run><h2>{title}: {_e(report.kind)} <code>{_e(report.run_id)}</code></h2>",
        f"<p>Started {_e(_when(report.started_at))}, finished {_e(_when(str(data.get('finished_at') or '')))}; "
        f"trigger {_e(data.get('trigger', ''))}, mode {_e(data.get('mode', ''))}"
        + (", <strong>dry run</strong> (nothing was changed)" if data.get("dry_run") else "")
        + f". Saved as <code>{_e(report.blob)}</code>.</p>",
    ]
    workspaces = data.get("workspaces")
    for ws in workspaces if isinstance(workspaces, list) else []:
        if isinstance(ws, Mapping) and ws.get("error"):
            out.append(f"<p class=note>Workspace {_e(ws.get('workspace'))} could not be listed: {_e(ws['error'])}</p>")
    if data.get("schedules_error"):
        out.append(f"<p class=note>COMPUTE_SCHEDULES is malformed: {_e(data['schedules_error'])}</p>")
    state_errors = data.get("state_errors")
    for problem in state_errors if isinstance(state_errors, list) else []:  # the reconciler's progress, repaired
        if isinstance(problem, Mapping) and problem.get("error"):
            out.append(f"<p class=note>{_e(problem['error'])}</p>")
    instances = report.instances
    if not instances:
        out.append("<p class=muted>No compute instances in this run.</p></section>")
        return "".join(out)
    extra = [(k, label) for k, label in SAVINGS_COLUMNS if any(k in i for i in instances)]
    columns = INSTANCE_COLUMNS + tuple(extra)
    out.append("<table><thead><tr>" + "".join(f"<th>{_e(label)}</th>" for _, label in columns) + "</tr></thead><tbody>")
    for entry in instances:
        cells = []
        for key, _ in columns:
            value = entry.get(key)
            if key == "outcome":
                cls = (
                    " class=bad"
                    if value in FAILED_OUTCOMES
                    else (" class=ok" if value in ("stopped", "started") else "")
                )
                cells.append(f"<td{cls}>{_e(value)}</td>")
            elif key in ("hourly_price", "estimated_savings"):
                number = _float(value)
                cells.append(f"<td class=n>{_e(_money(number, str(entry.get('currency') or '')))}</td>")
            elif key == "estimated_hours_saved":
                number = _float(value)
                cells.append(f"<td class=n>{'—' if number is None else f'{number:.1f}'}</td>")
            else:
                cells.append(f"<td>{_e(value if value is not None else '')}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></section>")
    return "".join(out)


def month_days(month: str) -> list[str]:
    """`YYYY-MM-DD` of every day of `YYYY-MM`."""
    year, mon = (int(p) for p in month.split("-"))
    day = datetime(year, mon, 1, tzinfo=UTC)
    days = []
    while day.month == mon:
        days.append(f"{day:%Y-%m-%d}")
        day += timedelta(days=1)
    return days


def daily_savings(reports: Iterable[SavedReport], month: str) -> tuple[dict[str, float], str, int]:
    """Estimated savings per day of `month` (UTC start of the run), the currency, and runs without an estimate."""
    per_day = dict.fromkeys(month_days(month), 0.0)
    currency = ""
    unestimated = 0
    for report in reports:
        day = report.started_at[:10]
        if day not in per_day or report.data.get("dry_run"):
            continue
        savings = report.savings
        if savings is None:
            unestimated += report.count("stopped") > 0
            continue
        per_day[day] += savings
        currency = currency or report.currency
    return per_day, currency, unestimated


def _nice_step(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value`: round axis ticks."""
    if value <= 0:
        return 0.25
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value * (1 - 1e-12):
            return step * magnitude
    return 10 * magnitude


def savings_chart_svg(per_day: Mapping[str, float], currency: str) -> str:
    """A bar per day with a labelled y axis; each bar has a tooltip (`<title>`) with the day and amount."""
    width, height, left, bottom, top, right = 760, 220, 64, 28, 12, 8
    days = list(per_day)
    step = _nice_step(max(per_day.values(), default=0.0) / 4)
    steps = max(1, math.ceil(max(per_day.values(), default=0.0) / step - 1e-9))
    top_value = step * steps
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(1, len(days))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='estimated savings per day'>"
    ]
    for i in range(steps + 1):
        value = step * i
        y = top + plot_h - plot_h * i / steps
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#d0d7de'/>")
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11' fill='#57606a'>{value:,.2f}</text>"
        )
    parts.append(
        f"<text x='12' y='{top + plot_h / 2:.1f}' font-size='11' fill='#57606a' text-anchor='middle' "
        f"transform='rotate(-90 12 {top + plot_h / 2:.1f})'>{_e(currency or 'savings')}</text>"
    )
    for i, day in enumerate(days):
        value = per_day[day]
        bar_h = plot_h * value / top_value
        x = left + i * slot
        parts.append(
            f"<rect x='{x + slot * 0.15:.1f}' y='{top + plot_h - bar_h:.1f}' width='{slot * 0.7:.1f}' "
            f"height='{bar_h:.1f}' fill='#2f81f7'><title>{_e(day)}: {_e(_money(value, currency))}</title></rect>"
        )
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f"<text x='{x + slot / 2:.1f}' y='{height - 10}' text-anchor='middle' font-size='11' "
                f"fill='#57606a'>{_e(day[8:])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _savings_section(page: Page, link: LinkFn) -> str:
    per_day, currency, unestimated = daily_savings(page.reports, page.month)
    total = sum(per_day.values())
    year, mon = (int(p) for p in page.month.split("-"))
    previous = f"{year - (mon == 1)}-{12 if mon == 1 else mon - 1:02d}"
    following = f"{year + (mon == 12)}-{1 if mon == 12 else mon + 1:02d}"
    out = [
        f"<section id=savings><h2>Estimated savings in {_e(page.month)}</h2>",
        f"<p>Total: <strong>{_e(_money(total, currency))}</strong> "
        f"<span class=muted>(<a href='{_e(link({'month': previous}))}'>{_e(previous)}</a> · "
        f"<a href='{_e(link({'month': following}))}'>{_e(following)}</a>)</span></p>",
        savings_chart_svg(per_day, currency),
    ]
    if unestimated:
        out.append(
            f"<p class=muted>{unestimated} run(s) of this month stopped instances without a savings estimate "
            "in their report (reports of older app versions, or no price known).</p>"
        )
    out.append("</section>")
    return "".join(out)


def _schedules_section(schedules: Sequence[Mapping[str, Any]] | None) -> str:
    out = ["<section id=schedules><h2>Schedules</h2>"]
    if not schedules:
        out.append("<p class=muted>No schedules configured.</p></section>")
        return "".join(out)
    out.append(
        "<table><thead><tr><th>Schedule</th><th>Time zone</th><th>Next transitions</th><th>Instances</th>"
        "</tr></thead><tbody>"
    )
    for schedule in schedules:
        transitions = schedule.get("next_transitions") or schedule.get("next") or []
        cells = []
        for t in transitions if isinstance(transitions, list) else []:
            if isinstance(t, Mapping):
                local = f" ({_e(t.get('local'))})" if t.get("local") else ""
                cells.append(f"{_e(t.get('action'))} at {_e(_when(str(t.get('at') or '')))}{local}")
        instances = schedule.get("instances") or []
        names = [
            f"{i.get('workspace', '')}/{i.get('name', '')}" if isinstance(i, Mapping) else str(i)
            for i in (instances if isinstance(instances, list) else [])
        ]
        error = schedule.get("error")
        out.append(
            f"<tr><td>{_e(schedule.get('name'))}</td><td>{_e(schedule.get('timezone'))}</td><td>"
            + ("<br>".join(cells) or "<span class=muted>none</span>")
            + (f"<br><span class=bad>{_e(error)}</span>" if error else "")
            + f"</td><td>{_e(', '.join(names)) or '<span class=muted>none</span>'}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _scoring_section(runs: Sequence[ScoringRun], link: LinkFn) -> str:
    out = ["<section id=scoring><h2>Scoring runs</h2>"]
    if not runs:
        out.append("<p class=muted>No scoring runs yet: upload a CSV to the input container.</p></section>")
        return "".join(out)
    out.append(
        "<table><thead><tr><th>File</th><th>Started</th><th>Status</th><th>Progress</th><th>Rows</th>"
        "<th>Bad rows</th><th>Outcome</th><th>Files</th></tr></thead><tbody>"
    )
    for run in runs:
        if run.chunks_total:
            done = run.chunks_done or 0
            progress = (
                f"<progress value='{done}' max='{run.chunks_total}'></progress> {done} / {run.chunks_total} chunks"
            )
        else:
            progress = _e(run.stage)
        files = []
        if run.predictions:
            files.append(f"<a href='{_e(link({'download': run.predictions}))}'>predictions</a>")
        if run.errors_file:
            files.append(f"<a href='{_e(link({'download': run.errors_file}))}'>bad rows</a>")
        if run.error_document:
            files.append(f"<a href='{_e(link({'download': run.error_document}))}'>error</a>")
        status_cls = " class=bad" if run.status in ("Failed", "Terminated") else ""
        outcome = run.error or (f"{run.stage}" if run.live else ("scored" if run.status == "Completed" else ""))
        out.append(
            f"<tr><td>{_e(run.source)}<br><code class=muted>{_e(run.run_id)}</code></td>"
            f"<td>{_e(_when(run.created))}</td><td{status_cls}>{_e(run.status)}</td><td>{progress}</td>"
            f"<td class=n>{'' if run.rows is None else run.rows}</td>"
            f"<td class=n{' bad' if run.bad_rows else ''}>{'' if run.bad_rows is None else run.bad_rows}</td>"
            f"<td>{_e(outcome)}</td><td>{' · '.join(files)}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def page_link(base_params: Mapping[str, str]) -> LinkFn:
    """Relative links to the dashboard itself keeping `code` (so a browser with `?code=` stays signed in)."""

    def link(params: Mapping[str, str]) -> str:
        merged = {**base_params, **params}
        return "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in merged.items() if v)

    return link


def select_report(reports: Sequence[SavedReport], run_id: str | None) -> SavedReport | None:
    """The report of `run_id`, or the latest one; DashboardInputError when that run has no saved report."""
    if run_id is None:
        return reports[0] if reports else None
    for report in reports:
        if report.run_id == run_id:
            return report
    raise LookupError(f"no saved shutdown or reconcile report has run id {run_id!r}")
