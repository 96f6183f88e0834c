"""What the dashboard shows, read from storage: saved run reports (cached by ETag) and files to download.

Reports never change once saved, so a process keeps the parsed ones it has read and asks storage only for the
listing plus the reports it has not seen: after the first view a page costs two listings, not a read per run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared import blobs, settings
from shared.compute.reconcile_state import is_state_blob
from shared.web.dashboard import REPORT_KINDS, DashboardInputError, SavedReport

log = logging.getLogger(__name__)

RECENT_RUNS = 100
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024

_cache: dict[tuple[str, str], tuple[str, SavedReport]] = {}  # (container, blob) -> (etag, report)
_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedReports:
    reports: list[SavedReport]  # newest first: the recent runs, the month's and the asked-for run
    total: int  # runs saved in all
    notes: list[str]


def _month_of(blob: str) -> str:
    # `shutdown/YYYY/MM/DD/{id}.json` -> `YYYY-MM`
    parts = blob.split("/")
    return f"{parts[1]}-{parts[2]}" if len(parts) >= 5 else ""


def load_reports(
    month: str, run_id: str | None, env: Mapping[str, str] | None = None, *, recent: int = RECENT_RUNS
) -> LoadedReports:
    """The reports the page needs: the `recent` newest, those of `month`, and the one of `run_id`."""
    container = settings.REPORTS_CONTAINER.get(env)
    listed: list[tuple[str, blobs.BlobListing]] = []
    for kind in REPORT_KINDS:
        listed += [
            (kind, b)
            for b in blobs.list_blobs(container, f"{kind}/", env)
            if b.name.endswith(".json") and not is_state_blob(b.name)  # the reconciler's progress is no run
        ]
    listed.sort(key=lambda kb: (kb[1].last_modified, kb[1].name), reverse=True)
    wanted = [
        kb
        for i, kb in enumerate(listed)
        if i < recent or _month_of(kb[1].name) == month or (run_id and kb[1].name.endswith(f"/{run_id}.json"))
    ]
    with _lock:
        stale = [b.name for _, b in wanted if _cache.get((container, b.name), ("",))[0] != b.etag]
    contents = blobs.read_blobs(container, stale, env)
    notes: list[str] = []
    reports: list[SavedReport] = []
    with _lock:
        for kind, listing in wanted:
            key = (container, listing.name)
            if listing.name in contents:
                raw = contents[listing.name]
                if raw is None:
                    continue
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    notes.append(f"report {container}/{listing.name} is not valid JSON ({err}); it is left out")
                    continue
                if not isinstance(data, dict):
                    notes.append(f"report {container}/{listing.name} is not a JSON object; it is left out")
                    continue
                _cache[key] = (listing.etag, SavedReport(kind, listing.name, data))
            if key in _cache:
                reports.append(_cache[key][1])
        keep = {(container, b.name) for _, b in wanted}
        for key in [k for k in _cache if k[0] == container and k not in keep]:
            del _cache[key]
    reports.sort(key=lambda r: (_sort_time(r.started_at), r.blob), reverse=True)
    return LoadedReports(reports, len(listed), notes)


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


def download(target: str, env: Mapping[str, str] | None = None) -> Download:
    """`?download=container/name`: a predictions or bad-rows file; only those two containers are served."""
    container, _, name = target.partition("/")
    allowed = (settings.SCORING_OUTPUT_CONTAINER.get(env), settings.SCORING_ERRORS_CONTAINER.get(env))
    if container not in allowed or not name:
        raise DashboardInputError(
            f"query parameter download={target!r} is not allowed: expected '<container>/<blob name>' in "
            f"{' or '.join(allowed)}"
        )
    info = blobs.blob_info(container, name, env)  # NotFoundError names the blob
    if info.size > MAX_DOWNLOAD_BYTES:
        raise DashboardInputError(
            f"{container}/{name} has {info.size} bytes, more than the dashboard serves ({MAX_DOWNLOAD_BYTES}); "
            "download it with a storage client (Azure Storage Explorer, azcopy, az storage blob download)"
        )
    return Download(container, name, blobs.read_blob(container, name, env), info.content_type or "text/csv")
