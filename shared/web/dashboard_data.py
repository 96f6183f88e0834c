"""What the dashboard shows, read from storage: run reports by their heads, the selected run's first rows, the
month's savings, the full report and files to download.

Only heads are read (shared.compute.report_head; cached by ETag in the process): a view costs two listings plus
one small ranged read per report it has not seen, and the selected run's first rows. A run of 10,000 instances is
never parsed whole for a page; `?run=<id>&format=json` serves its whole report as saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from shared import blobs, settings
from shared.compute import savings_month
from shared.compute.report_head import ReportFormatError, read_head
from shared.compute.savings_month import ListedReport, MonthSavings
from shared.errors import NotFoundError, RequestFieldError
from shared.web.dashboard import REPORT_KINDS, SavedReport, SelectedRun

log = logging.getLogger(__name__)

RECENT_RUNS = 100
INSTANCE_ROWS = 200  # rows of the selected run's instance table on the page (the full report is a link away)
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LoadedReports:
    reports: list[SavedReport]  # newest first: the recent runs, the month's and the asked-for run
    selected: SelectedRun | None  # the asked-for run, else the latest
    savings: MonthSavings
    total: int  # runs saved in all
    notes: list[str]


def _listed(env: Mapping[str, str] | None) -> tuple[str, list[ListedReport]]:
    container = settings.REPORTS_CONTAINER.get(env)
    listed = savings_month.list_reports(container, [f"{kind}/" for kind in REPORT_KINDS], env)
    # Newest first by the day of the run's start (its blob name), then by when the report was saved.
    listed.sort(key=lambda r: (r.day, r.last_modified, r.blob), reverse=True)
    return container, listed


def _find(listed: list[ListedReport], run_id: str | None) -> ListedReport | None:
    if run_id is None:
        return listed[0] if listed else None
    for report in listed:
        if report.run_id == run_id:
            return report
    raise NotFoundError(f"no saved shutdown or reconcile report has run id {run_id!r}")


def load_reports(
    month: str, run_id: str | None, env: Mapping[str, str] | None = None, *, recent: int = RECENT_RUNS
) -> LoadedReports:
    """The reports the page needs: the `recent` newest, those of `month` (for its savings) and the one of
    `run_id` (NotFoundError when no report has it), each by its head; the selected run's first rows."""
    container, listed = _listed(env)
    chosen = _find(listed, run_id)
    shown = listed[:recent]
    if chosen is not None and chosen not in shown:
        shown.append(chosen)
    savings = savings_month.savings_of(month, container, listed, env)
    found, unreadable = savings_month.heads(container, shown, env)
    notes = [f"report {container}/{blob} is not readable JSON; it is left out" for blob in unreadable]
    notes += [f"report {container}/{blob} is not readable JSON; it is left out" for blob in savings.unreadable]
    reports = [SavedReport(r.kind, r.blob, found[r.blob].fields) for r in shown if r.blob in found]
    reports.sort(key=lambda r: (_sort_time(r.started_at), r.blob), reverse=True)
    selected = None
    if chosen is not None and chosen.blob in found:
        selected = _selected(container, chosen, env)
    return LoadedReports(reports, selected, savings, len(listed), sorted(set(notes)))


def _selected(container: str, report: ListedReport, env: Mapping[str, str] | None) -> SelectedRun | None:
    try:
        head = read_head(container, report.blob, report.size, env, rows=INSTANCE_ROWS)
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
    info = blobs.blob_info(container, name, env)  # NotFoundError names the blob
    if info.size > MAX_DOWNLOAD_BYTES:
        raise RequestFieldError(
            "download",
            f"{container}/{name} has {info.size} bytes, more than the dashboard serves ({MAX_DOWNLOAD_BYTES}); "
            "download it with a storage client (Azure Storage Explorer, azcopy, az storage blob download)",
        )
    return Download(container, name, blobs.read_blob(container, name, env), info.content_type or "text/csv")


def download_containers(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return (settings.SCORING_OUTPUT_CONTAINER.get(env), settings.SCORING_ERRORS_CONTAINER.get(env))


def full_report(run_id: str | None, env: Mapping[str, str] | None = None) -> Download:
    """`?run=<id>&format=json`: the run's whole report as saved (the latest run's without `run`)."""
    container, listed = _listed(env)
    report = _find(listed, run_id)
    if report is None:
        raise NotFoundError("no shutdown or reconcile run has saved a report yet")
    return Download(container, report.blob, blobs.read_blob(container, report.blob, env), "application/json")
