"""What the dashboard shows, read from storage: the runs by their reports' heads, the selected run's first rows,
the month's savings (measured and estimated), the stops announced and not made yet, the whole report of a run, and
files to download.

Heads come from shared.compute.run_reports (kept in the process and in a per-month index): after the first view a
page costs the listings of a few months by name; the selected run costs one or two ranged reads. A run of 10,000
instances is never parsed whole for a page; `?run=<id>&format=json` serves its whole report as saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from shared import blobs, settings
from shared.compute import run_reports
from shared.compute.postponements import PendingStop
from shared.compute.report_head import ReportFormatError, read_head
from shared.compute.run_reports import UNREADABLE, MonthHeads
from shared.compute.savings_month import MonthSavings, savings_of, with_measured
from shared.errors import NotFoundError, RequestFieldError
from shared.web.contract import MAX_BLOB_NAME
from shared.web.dashboard import SavedReport, SelectedRun

log = logging.getLogger(__name__)

RECENT_RUNS = 100
MONTHS_BACK = 12  # months read back from the current one to find the recent runs
INSTANCE_ROWS = 200  # rows of the selected run's instance table on the page (the full report is a link away)
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
SERVED_TYPES = ("text/csv", "application/json")


@dataclass(frozen=True)
class LoadedReports:
    reports: list[SavedReport]  # newest first: the recent runs (and the asked-for run)
    selected: SelectedRun | None  # the asked-for run, else the latest
    savings: MonthSavings
    total: int  # runs saved in the months read
    since: str  # the earliest of those months (YYYY-MM)
    notes: list[str]


def _previous(month: str) -> str:
    year, mon = (int(p) for p in month.split("-"))
    return f"{year - (mon == 1):04d}-{12 if mon == 1 else mon - 1:02d}"


def _recent_months(container: str, now: datetime, recent: int, env: Mapping[str, str] | None) -> list[MonthHeads]:
    """The months from the current one back, until they hold `recent` runs (or MONTHS_BACK months)."""
    month = f"{now.astimezone(UTC):%Y-%m}"
    months = []
    for _ in range(MONTHS_BACK):
        months.append(run_reports.month_heads(container, month, env))
        if sum(len(m.reports) for m in months) >= recent:
            break
        month = _previous(month)
    return months


def _saved(months: list[MonthHeads]) -> list[SavedReport]:
    """Every readable report of `months`, newest start first."""
    out = {
        r.blob: SavedReport(r.kind, r.blob, m.heads[r.blob])
        for m in months
        for r in m.reports
        if UNREADABLE not in m.heads.get(r.blob, {UNREADABLE: "not read"})
    }
    return sorted(out.values(), key=lambda r: (_sort_time(r.started_at), r.blob), reverse=True)


def load_reports(
    month: str,
    run_id: str | None,
    env: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    recent: int = RECENT_RUNS,
) -> LoadedReports:
    """The recent runs by their heads, the savings of `month`, and the run of `run_id` (NotFoundError when no
    report has it; the latest run without it) with its first rows."""
    container = settings.REPORTS_CONTAINER.get(env)
    now = now or datetime.now(UTC)
    months = _recent_months(container, now, recent, env)
    shown = next((m for m in months if m.month == month), None) or run_reports.month_heads(container, month, env)
    saved = _saved(months)
    chosen = _chosen(container, saved, run_id, env)
    reports = saved[:recent]
    if chosen is not None and chosen.blob not in {r.blob for r in reports}:
        reports.append(chosen)
    notes = [
        f"report {container}/{blob} is not a readable run report; it is left out"
        for m in [*months, shown]
        for blob in m.unreadable
    ]
    selected = _selected(container, chosen, env) if chosen is not None else None
    return LoadedReports(
        reports,
        selected,
        with_measured(savings_of(shown), now, env),
        sum(len(m.reports) for m in months),
        months[-1].month,
        sorted(set(notes)),
    )


def _chosen(
    container: str, saved: list[SavedReport], run_id: str | None, env: Mapping[str, str] | None
) -> SavedReport | None:
    if run_id is None:
        return saved[0] if saved else None
    for report in saved:
        if report.run_id == run_id:
            return report
    found = run_reports.find_report(container, run_id, env)  # an older run: every report's name is listed
    if found is None:
        raise NotFoundError(f"no saved shutdown or reconcile report has run id {run_id!r}")
    head = run_reports.head_of(container, found, env)
    if UNREADABLE in head:
        raise NotFoundError(f"the report of run {run_id!r} ({found.blob}) is not readable: {head[UNREADABLE]}")
    return SavedReport(found.kind, found.blob, head)


def _selected(container: str, report: SavedReport, env: Mapping[str, str] | None) -> SelectedRun | None:
    try:
        head = read_head(container, report.blob, env, rows=INSTANCE_ROWS)
    except (ReportFormatError, UnicodeDecodeError) as err:
        log.warning("report %s/%s is not readable: %s", container, report.blob, err)
        return None
    return SelectedRun(SavedReport(report.kind, report.blob, head.fields), head.first_instances, head.more_instances)


def _sort_time(iso: str) -> str:
    # Reports write UTC ISO times; normalise the few spellings so string order is time order.
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return iso


@dataclass(frozen=True)
class Download:
    container: str
    name: str
    data: bytes
    content_type: str

    @property
    def disposition(self) -> str:
        return content_disposition(self.name)

    def disposition_as(self, kind: str) -> str:
        return content_disposition(self.name, kind)


def content_disposition(name: str, kind: str = "attachment") -> str:
    """RFC 6266: the file's own name as `filename*` (RFC 8187 UTF-8, percent-encoded) and an ASCII `filename`
    for clients that predate it (non-ASCII, quotes, backslashes and control characters become `_`)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in base)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


def download(container: str, name: str, env: Mapping[str, str] | None = None) -> Download:
    """A predictions or error file (the caller checked `container` is one of them: shared.web.inputs)."""
    if len(name) > MAX_BLOB_NAME:  # storage would refuse the name itself (400): no such file can exist
        raise NotFoundError(
            f"no blob {container}/{name[:40]}... exists: a blob name has at most {MAX_BLOB_NAME} characters"
        )
    info = blobs.blob_info(container, name, env)  # NotFoundError names the blob
    if info.size > MAX_DOWNLOAD_BYTES:
        raise RequestFieldError(
            "download",
            f"{container}/{name} has {info.size} bytes, more than the dashboard serves ({MAX_DOWNLOAD_BYTES}); "
            "download it with a storage client (Azure Storage Explorer, azcopy, az storage blob download)",
        )
    # The media types the OpenAPI document states for a file: what predictions, bad rows and error documents are.
    served = info.content_type.split(";")[0].strip().lower() or "text/csv"  # none stated: our CSVs
    media = served if served in SERVED_TYPES else "application/octet-stream"
    return Download(container, name, blobs.read_blob(container, name, env), media)


def download_containers(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return (settings.SCORING_OUTPUT_CONTAINER.get(env), settings.SCORING_ERRORS_CONTAINER.get(env))


def full_report(run_id: str | None, env: Mapping[str, str] | None = None, *, now: datetime | None = None) -> Download:
    """`?run=<id>&format=json`: the run's whole report as saved (the latest run's without `run`)."""
    container = settings.REPORTS_CONTAINER.get(env)
    if run_id is None:
        saved = _saved(_recent_months(container, now or datetime.now(UTC), 1, env))
        if not saved:
            raise NotFoundError("no shutdown or reconcile run has saved a report yet")
        blob = saved[0].blob
    else:
        found = run_reports.find_report(container, run_id, env)
        if found is None:
            raise NotFoundError(f"no saved shutdown or reconcile report has run id {run_id!r}")
        blob = found.blob
    return Download(container, blob, blobs.read_blob(container, blob, env), "application/json")


@dataclass(frozen=True)
class PendingStops:
    """The announced stops of the runs in progress, and how many belong to runs that no longer run."""

    stops: list[PendingStop]
    orphaned: int = 0
    notes: list[str] = field(default_factory=list)


def pending_stops(live_runs: set[str], now: datetime, env: Mapping[str, str] | None = None) -> PendingStops:
    """Every stop announced by a run still running and not made yet, soonest first (shared.compute.postponements).
    A record whose run no longer runs (lost with a host that keeps orchestrations in memory, as devhost does) is
    counted, not listed: nothing will make its stops."""
    from shared.compute.postponements import pending_stops as announced

    found = announced(now, env)
    kept = [p for p in found if p.run in live_runs]
    return PendingStops(kept, len({(p.run, p.workspace) for p in found if p.run not in live_runs}))
