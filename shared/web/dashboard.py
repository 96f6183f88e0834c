"""The operator's dashboard page: shutdown and reconcile runs (with their heads-up), the stops announced and not made
yet, savings (measured and estimated), schedules and scoring runs as one HTML page.

Pure rendering over plain data (saved reports, Durable status dicts, schedule overviews), so it is tested without a
host. Everything shown comes from user data (instance names, tags, file names): it goes through `_e` (HTML escape)
and nothing else. No script, no CDN: the page works offline; while a run is going on it refreshes itself.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.compute.postponements import PendingStop
from shared.compute.savings_month import MonthSavings, savings_by_currency
from shared.web.contract import YEARS

REPORT_KINDS = ("shutdown", "reconcile")
# Outcomes a person reads as "failed": a stop that did not end in time failed as much as one ARM refused.
FAILED_OUTCOMES = ("failed", "timed_out")
OUTCOMES = ("stopped", "started", "already_stopped", "skipped", "failed", "timed_out")
LIVE_STATUSES = ("Pending", "Running", "ContinueAsNew")


@dataclass(frozen=True)
class SavedReport:
    """One shutdown or reconcile report as saved in the reports container: its head (every field but `instances`,
    shared.compute.report_head)."""

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
    def savings(self) -> dict[str, float] | None:
        """The run's estimated savings per currency, or None when the report carries no estimate (older reports):
        the rule of the month's savings (shared.compute.savings_month)."""
        return savings_by_currency(self.totals)


@dataclass(frozen=True)
class SelectedRun:
    """The run shown in detail: its head and the first rows of its instance table."""

    report: SavedReport
    instances: Sequence[Mapping[str, Any]]
    more: bool  # the report lists more instances than these


def _run_id_of_blob(blob: str) -> str:
    return blob.rsplit("/", 1)[-1].removesuffix(".json")


def report_kind_prefix(kind: str) -> str:
    """Where reports of `kind` are saved in the reports container: `shutdown/` and `reconcile/`."""
    return f"{kind}/"


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
    selected: SelectedRun | None
    month: str
    scoring: Sequence[ScoringRun]
    schedules: Sequence[Mapping[str, Any]] | None  # None: the app has no schedules feature configured
    now: datetime
    live_shutdowns: Sequence[Mapping[str, Any]] = ()
    notes: Sequence[str] = ()  # problems reading a source, shown instead of that section's data
    max_runs: int = 100
    total_runs: int = 0  # runs saved since `runs_since` (the page reads the months back to the recent runs)
    runs_since: str = ""  # YYYY-MM
    savings: MonthSavings | None = None  # the month's (shared.compute.savings_month); None: nothing saved
    pending: Sequence[PendingStop] = ()  # stops announced by running runs and not made yet, soonest first
    orphaned_notices: int = 0  # heads-up records of runs that no longer run (lost with the host)


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


def _amounts(by_currency: Mapping[str, float] | None) -> str:
    """`12.30 USD, 4.10 EUR`: amounts per currency, never added together; a dash when there is no estimate."""
    if by_currency is None:
        return "—"
    if not by_currency:
        return _money(0.0, "")
    return ", ".join(_money(amount, code) for code, amount in sorted(by_currency.items()))


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
    live = any(r.live for r in page.scoring) or bool(page.live_shutdowns) or bool(page.pending)
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
    parts.append(_pending_section(page))
    parts.append(_selected_section(page, link))
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
    has_notice = any(isinstance(r.data.get("heads_up"), Mapping) for r in page.reports)
    out.append(
        "<table><thead><tr><th>When (start)</th><th>Kind</th><th>Trigger</th><th>Stopped</th><th>Started</th>"
        "<th>Skipped</th><th>Already stopped</th><th>Failed</th><th>Estimated savings</th>"
        + ("<th>ARM requests</th>" if has_arm else "")
        + ("<th>Heads-up</th>" if has_notice else "")
        + "<th>Duration</th><th></th></tr></thead><tbody>"
    )
    selected = page.selected.report.run_id if page.selected else None
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
            f"<td class=n>{_e(_amounts(report.savings))}</td>{arm_cell}"
            + (_heads_up_cell(report.data.get("heads_up")) if has_notice else "")
            + f"<td class=n>{'' if seconds is None else f'{seconds:.1f} s'}</td>"
            f"<td><a href='{_e(link({'run': report.run_id}))}'>details</a></td></tr>"
        )
    out.append("</tbody></table>")
    total = max(page.total_runs, len(page.reports))
    if total > page.max_runs:
        since = f" saved since {_e(page.runs_since)}" if page.runs_since else ""
        out.append(f"<p class=muted>The {page.max_runs} most recent of {total} runs{since}.</p>")
    out.append("</section>")
    return "".join(out)


def _heads_up_cell(heads_up: Any) -> str:
    """A run's heads-up in a word: the messages sent (and failed), or why there was none."""
    if not isinstance(heads_up, Mapping):
        return "<td class=muted>—</td>"
    if heads_up.get("error") and not _int(heads_up.get("messages_sent")):
        return f"<td class=bad>none: {_e(heads_up['error'])}</td>"
    failed = _int(heads_up.get("messages_failed"))
    text = (
        f"{_int(heads_up.get('messages_sent'))} message(s) to {_int(heads_up.get('owners'))} owner(s), "
        f"{_e(heads_up.get('minutes'))} min ahead"
    )
    return f"<td>{text}" + (f", <span class=bad>{failed} failed</span>" if failed else "") + "</td>"


def _countdown(due: datetime, now: datetime) -> str:
    seconds = (due - now).total_seconds()
    if seconds <= 0:
        return "now"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"in {hours} h {minutes:02d} min" if hours else f"in {minutes} min {secs:02d} s"


def _pending_section(page: Page) -> str:
    """The stops announced and not made yet: when each comes (a countdown), whose it is, what its owner chose."""
    if not page.pending and not page.orphaned_notices:
        return ""
    out = ["<section id=pending><h2>Announced stops, not made yet</h2>"]
    if page.pending:
        out.append(
            "<table><thead><tr><th>Stop</th><th>Instance</th><th>Workspace</th><th>Owner</th><th>Planned</th>"
            "<th>Owner's choice</th><th>Run</th></tr></thead><tbody>"
        )
        for stop in page.pending:
            due = datetime.fromisoformat(stop.due_at.replace("Z", "+00:00"))
            if stop.stop_now:
                choice = f"stop now (by {_e(stop.postponed_by)})"
            elif stop.postponed_until:
                choice = f"postponed to {_e(_when(stop.postponed_until))} by {_e(stop.postponed_by)}"
            else:
                choice = "<span class=muted>none</span>"
            out.append(
                f"<tr><td>{_e(_countdown(due, page.now))}<br><span class=muted>{_e(_when(stop.due_at))}</span></td>"
                f"<td>{_e(stop.instance)}</td><td>{_e(stop.workspace)}</td><td>{_e(stop.owner or '')}</td>"
                f"<td>{_e(_when(stop.planned_stop))}</td><td>{choice}</td><td><code>{_e(stop.run)}</code></td></tr>"
            )
        out.append("</tbody></table>")
    if page.orphaned_notices:
        out.append(
            f"<p class=note>{page.orphaned_notices} heads-up record(s) in <code>notices/</code> belong to runs that "
            "no longer run (lost with the host: devhost keeps orchestrations in memory). Nothing will make those "
            "stops and their links answer 410; the records may be deleted.</p>"
        )
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


def _selected_section(page: Page, link: LinkFn) -> str:
    if page.selected is None:
        return ""
    report, instances = page.selected.report, page.selected.instances
    data = report.data
    title = "Latest run" if page.reports and report.run_id == page.reports[0].run_id else "Run"
    out = [
        f"<section id=run><h2>{title}: {_e(report.kind)} <code>{_e(report.run_id)}</code></h2>",
        f"<p>Started {_e(_when(report.started_at))}, finished {_e(_when(str(data.get('finished_at') or '')))}; "
        f"trigger {_e(data.get('trigger', ''))}, mode {_e(data.get('mode', ''))}"
        + (", <strong>dry run</strong> (nothing was changed)" if data.get("dry_run") else "")
        + f". Saved as <code>{_e(report.blob)}</code> "
        f"(<a href='{_e(link({'run': report.run_id, 'format': 'json'}))}'>full report, JSON</a>).</p>",
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
    heads_up = data.get("heads_up")
    if isinstance(heads_up, Mapping):
        if heads_up.get("error"):
            out.append(f"<p class=note>Heads-up: {_e(heads_up['error'])}</p>")
        failures = heads_up.get("failures")
        for failure in failures if isinstance(failures, list) else []:
            if isinstance(failure, Mapping):
                out.append(f"<p class=note>Heads-up not delivered: {_e(failure.get('error'))}</p>")
    counts = [f"{_e(o.replace('_', ' '))}: {report.count(o)}" for o in OUTCOMES if report.count(o)]
    if counts:
        out.append(f"<p>Instances by outcome: {' · '.join(counts)}.</p>")
    if not instances:
        out.append("<p class=muted>No compute instances in this run.</p></section>")
        return "".join(out)
    extra = [(k, label) for k, label in SAVINGS_COLUMNS if any(k in i for i in instances)]
    if any(isinstance(i.get("notice"), Mapping) for i in instances):
        extra.append(("notice", "Heads-up"))
    columns = INSTANCE_COLUMNS + tuple(extra)
    out.append("<table><thead><tr>" + "".join(f"<th>{_e(label)}</th>" for _, label in columns) + "</tr></thead><tbody>")
    out += ["<tr>" + "".join(_instance_cell(entry, key) for key, _ in columns) + "</tr>" for entry in instances]
    out.append("</tbody></table>")
    if page.selected.more:
        total = _int(report.totals.get("instances")) or report.count(*OUTCOMES)
        of = f" of {total}" if total else ""
        out.append(
            f"<p class=muted>The first {len(instances)}{of} instances; every one is in the "
            f"<a href='{_e(link({'run': report.run_id, 'format': 'json'}))}'>full report</a>.</p>"
        )
    out.append("</section>")
    return "".join(out)


def _instance_cell(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if key == "outcome":
        cls = " class=bad" if value in FAILED_OUTCOMES else (" class=ok" if value in ("stopped", "started") else "")
        return f"<td{cls}>{_e(value)}</td>"
    if key in ("hourly_price", "estimated_savings"):
        return f"<td class=n>{_e(_money(_float(value), str(entry.get('currency') or '')))}</td>"
    if key == "estimated_hours_saved":
        number = _float(value)
        return f"<td class=n>{'—' if number is None else f'{number:.1f}'}</td>"
    if key == "notice":
        return f"<td>{_notice_text(value)}</td>"
    return f"<td>{_e(value if value is not None else '')}</td>"


def _notice_text(notice: Any) -> str:
    """An instance's heads-up: when and where it went, what its owner chose, what failed."""
    if not isinstance(notice, Mapping):
        return "<span class=muted>—</span>"
    raw = notice.get("channels")
    channels: list[Any] = raw if isinstance(raw, list) else []
    parts = []
    if notice.get("sent_at"):
        parts.append(f"sent {_e(_when(str(notice['sent_at'])))} ({_e(', '.join(map(str, channels)))})")
    if notice.get("postponed_until"):
        parts.append(f"postponed to {_e(_when(str(notice['postponed_until'])))} by {_e(notice.get('postponed_by'))}")
    elif notice.get("postponed_by"):
        parts.append(f"stop now, by {_e(notice['postponed_by'])}")
    if notice.get("error"):
        parts.append(f"<span class=bad>{_e(notice['error'])}</span>")
    return "; ".join(parts) or "<span class=muted>not sent</span>"


def month_days(month: str) -> list[str]:
    """`YYYY-MM-DD` of every day of `YYYY-MM`."""
    year, mon = (int(p) for p in month.split("-"))
    day = datetime(year, mon, 1, tzinfo=UTC)
    days = []
    while day.month == mon:
        days.append(f"{day:%Y-%m-%d}")
        day += timedelta(days=1)
    return days


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


def _shift_month(month: str, by: int) -> str | None:
    """The month `by` months from `month`, None outside the years the API takes."""
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + mon - 1 + by
    year, mon = divmod(index, 12)
    return f"{year:04d}-{mon + 1:02d}" if YEARS[0] <= year <= YEARS[1] else None


def _savings_section(page: Page, link: LinkFn) -> str:
    savings = page.savings or MonthSavings(page.month)
    days = month_days(page.month)
    neighbours = [m for m in (_shift_month(page.month, -1), _shift_month(page.month, 1)) if m]
    nav = " · ".join(f"<a href='{_e(link({'month': m}))}'>{_e(m)}</a>" for m in neighbours)
    out = [
        f"<section id=savings><h2>Savings in {_e(page.month)}: measured and estimated</h2>",
        _measured_text(savings.measured),
        f"<p>Estimated savings in {_e(page.month)} (from the runs' reports). "
        f"Total: <strong>{_e(_amounts(savings.by_currency))}</strong> <span class=muted>({nav})</span></p>",
    ]
    # One chart per currency: amounts in different currencies are never added or drawn on one axis.
    for currency in sorted(savings.by_currency) or [""]:
        per_day = {day: savings.by_day.get(day, {}).get(currency, 0.0) for day in days}
        out.append(savings_chart_svg(per_day, currency))
    if savings.without_estimate:
        out.append(
            f"<p class=muted>{savings.without_estimate} run(s) of this month stopped or started instances without a "
            "savings estimate in their report (reports of older app versions, or no price known).</p>"
        )
    out.append("</section>")
    return "".join(out)


def _measured_text(measured: Mapping[str, Any] | None) -> str:
    """What was measured: hours the app's stops really lasted (until each instance ran again), and their worth."""
    if not isinstance(measured, Mapping):
        return ""
    if measured.get("error"):
        return f"<p class=note>{_e(measured['error'])}</p>"
    by_currency = measured.get("savings_by_currency")
    amounts = _amounts(by_currency if isinstance(by_currency, Mapping) else {})
    hours = _float(measured.get("stopped_hours")) or 0.0
    unpriced = _float(measured.get("unpriced_hours")) or 0.0
    return (
        f"<p>Measured: <strong>{_e(amounts)}</strong> over {hours:,.1f} stopped hours of "
        f"{_int(measured.get('instances'))} instance(s), {_int(measured.get('still_stopped'))} still stopped"
        + (f"; {unpriced:,.1f} h without a price" if unpriced else "")
        + " <span class=muted>(from when the app stopped each one until it was seen running again)</span></p>"
    )


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
