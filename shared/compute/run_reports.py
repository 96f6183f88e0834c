"""The saved run reports of a month and what their heads say, for readers that must stay fast with thousands of
runs: the dashboard and `GET /api/savings`.

A run report is a blob named `{shutdown|reconcile}/YYYY/MM/DD/{run id}.json` in the reports container; nothing
else there is (the reconciler's state, the runs' working blobs, this module's index). Reading a report's head costs
one ranged read (shared.compute.report_head), about 2 ms of this process's CPU each: 1,000 runs would cost seconds
on every cold start. So each month's heads, reduced to the fields the readers use (HEAD_FIELDS), are kept:

- in this process (`HEADS`, by blob name: a saved report never changes), a few hundred bytes per run;
- in the reports container, as `index/YYYY-MM.json` ({"version": 1, "reports": {blob name: head}}), added to by
  every compute run when it saves its report (`note_report`, a conditional write), and written by whichever reader
  read heads the index lacked: so even the first view of a month reads one blob instead of every report. It is a
  cache: deleting it loses nothing (the next reader writes it again); a reader writing it at the same time as
  another may drop the other's additions, which the next reader reads again; entries of deleted reports are
  ignored (only listed reports count) and dropped at the next write.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.compute.report_head import ReportFormatError, read_head

log = logging.getLogger(__name__)

KINDS = ("shutdown", "reconcile")
REPORT_BLOB = re.compile(r"^(?P<kind>shutdown|reconcile)/(?P<day>[0-9]{4}/[0-9]{2}/[0-9]{2})/(?P<run>[^/]+)\.json$")
# What the run list and the month's savings read of a head (never `workspaces` or `instances`).
HEAD_FIELDS = (
    "instance_id",
    "trigger",
    "dry_run",
    "mode",
    "started_at",
    "finished_at",
    "seconds",
    "totals",
    "arm_requests",
)
UNREADABLE = "unreadable"  # the key of a head that says why its blob is no report
INDEX_VERSION = 1
READ_WORKERS = 16  # ranged reads at once (the client's CPU, not the round trips, bounds them)


@dataclass(frozen=True)
class ListedReport:
    """A run report as its blob name says: kind, day of its start (UTC), run id."""

    kind: str
    day: str  # YYYY-MM-DD
    run_id: str
    blob: str


def report_blob_parts(name: str) -> ListedReport | None:
    """The report a blob name is, None for any other blob (the reconciler's state, working blobs, the index)."""
    match = REPORT_BLOB.match(name)
    if match is None:
        return None
    return ListedReport(match["kind"], match["day"].replace("/", "-"), match["run"], name)


def list_reports(container: str, prefixes: Iterable[str], env: Mapping[str, str] | None = None) -> list[ListedReport]:
    """The run reports under `prefixes` of the reports container, by name (one listing per prefix)."""
    from shared import blobs

    return [
        r for prefix in prefixes for name in blobs.list_names(container, prefix, env) if (r := report_blob_parts(name))
    ]


def month_prefixes(month: str) -> list[str]:
    year, mon = month.split("-")
    return [f"{kind}/{year}/{mon}/" for kind in KINDS]


class _Heads:
    """Heads by (container, blob name), the newest `limit` kept."""

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._heads: OrderedDict[tuple[str, str], Mapping[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, container: str, blob: str) -> Mapping[str, Any] | None:
        with self._lock:
            head = self._heads.get((container, blob))
            if head is not None:
                self._heads.move_to_end((container, blob))
            return head

    def put(self, container: str, blob: str, head: Mapping[str, Any]) -> None:
        with self._lock:
            self._heads[(container, blob)] = head
            self._heads.move_to_end((container, blob))
            while len(self._heads) > self._limit:
                self._heads.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._heads.clear()

    def __len__(self) -> int:
        return len(self._heads)


HEADS = _Heads()


def _index_blob(month: str) -> str:
    return f"index/{month}.json"


def _read_index(container: str, month: str, env: Mapping[str, str] | None) -> dict[str, Mapping[str, Any]]:
    """The month's index, or nothing when there is none or it is not ours (it is only a cache)."""
    from shared import blobs
    from shared.errors import NotFoundError

    try:
        return _parse_index(blobs.read_blob(container, _index_blob(month), env), month)
    except NotFoundError:
        return {}


def _parse_index(raw: bytes, month: str) -> dict[str, Mapping[str, Any]]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        log.warning("index %s is not readable (%s); it is written again", _index_blob(month), err)
        return {}
    reports = data.get("reports") if isinstance(data, dict) and data.get("version") == INDEX_VERSION else None
    if not isinstance(reports, dict):
        return {}
    return {str(blob): head for blob, head in reports.items() if isinstance(head, dict)}


def _write_index(
    container: str, month: str, heads: Mapping[str, Mapping[str, Any]], env: Mapping[str, str] | None
) -> None:
    from shared import blobs
    from shared.errors import StorageError

    body = json.dumps({"version": INDEX_VERSION, "month": month, "reports": dict(sorted(heads.items()))})
    try:
        blobs.upload(container, _index_blob(month), body.encode(), content_type="application/json", env=env)
    except StorageError as err:  # only a cache: the page answers all the same, the next reader tries again
        log.warning("index %s/%s not written: %s", container, _index_blob(month), err)


def _head_of(container: str, report: ListedReport, env: Mapping[str, str] | None) -> Mapping[str, Any]:
    """The fields of HEAD_FIELDS a report's head has (read past `instances` when an older report put `totals`
    after them), or why the blob is no report."""
    try:
        head = read_head(container, report.blob, env, needs=("totals", "dry_run", "started_at"))
    except (ReportFormatError, UnicodeDecodeError) as err:
        return {UNREADABLE: f"not a JSON object ({err})"}
    if not isinstance(head.fields.get("totals"), Mapping):
        return {UNREADABLE: "no totals: not a run report"}
    return {key: _finite(head.fields[key]) for key in HEAD_FIELDS if key in head.fields}


def _finite(value: Any) -> Any:
    """The value with NaN and infinities (an older report of a bad price) as null: the index stays JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


@dataclass(frozen=True)
class MonthHeads:
    """The month's run reports and each one's head (`UNREADABLE` in it: the blob is no report)."""

    month: str
    reports: list[ListedReport]
    heads: dict[str, Mapping[str, Any]]  # by blob name

    @property
    def unreadable(self) -> list[str]:
        return sorted(blob for blob, head in self.heads.items() if UNREADABLE in head)


def month_heads(container: str, month: str, env: Mapping[str, str] | None = None) -> MonthHeads:
    """The month's reports (listed by name) and their heads: from this process, else the month's index, else
    read from each report (and then written to the index)."""
    reports = list_reports(container, month_prefixes(month), env)
    heads: dict[str, Mapping[str, Any]] = {}
    missing = []
    for report in reports:
        cached = HEADS.get(container, report.blob)
        if cached is None:
            missing.append(report)
        else:
            heads[report.blob] = cached
    if missing:
        index = _read_index(container, month, env)
        unread = [r for r in missing if r.blob not in index]
        with ThreadPoolExecutor(max_workers=max(1, min(READ_WORKERS, len(unread)))) as pool:
            found = dict(
                zip((r.blob for r in unread), pool.map(lambda r: _head_of(container, r, env), unread), strict=True)
            )
        for report in missing:
            head = found.get(report.blob) or index[report.blob]
            HEADS.put(container, report.blob, head)
            heads[report.blob] = head
        if unread:
            _write_index(container, month, heads, env)
    return MonthHeads(month, reports, heads)


def find_report(container: str, run_id: str, env: Mapping[str, str] | None = None) -> ListedReport | None:
    """The report of a run, wherever it is (every report's name is listed: a link to an old run is rare)."""
    for report in list_reports(container, [f"{kind}/" for kind in KINDS], env):
        if report.run_id == run_id:
            return report
    return None


def head_of(container: str, report: ListedReport, env: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """One report's head (from this process when it read it before)."""
    cached = HEADS.get(container, report.blob)
    if cached is None:
        cached = _head_of(container, report, env)
        HEADS.put(container, report.blob, cached)
    return cached


NOTE_ATTEMPTS = 20  # conditional writes of the index by one run before it leaves the addition to the next reader


def note_report(container: str, blob: str, head: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bool:
    """Add a just-saved report's head to its month's index (a conditional write: concurrent runs each keep their
    addition). Best effort, as the index is a cache: on failure the next reader reads that report's head itself.
    True when the index holds it."""
    from shared import blobs
    from shared.errors import OutputChangedError, StorageError

    report = report_blob_parts(blob)
    if report is None:
        return False
    month = report.day[:7]
    entry = {key: _finite(head[key]) for key in HEAD_FIELDS if key in head}
    for attempt in range(NOTE_ATTEMPTS):
        if attempt:  # lost a race: wait a little, at random, so that racing runs do not collide again
            time.sleep(random.uniform(0, 0.02 * attempt))
        try:
            found = blobs.read_blob_etag(container, _index_blob(month), env)
            heads, etag = ({}, None) if found is None else (_parse_index(found[0], month), found[1])
            heads[blob] = entry
            body = json.dumps({"version": INDEX_VERSION, "month": month, "reports": dict(sorted(heads.items()))})
            blobs.upload_if(
                container, _index_blob(month), body.encode(), content_type="application/json", if_match=etag, env=env
            )
        except OutputChangedError:
            continue  # another run or reader wrote it meanwhile: read it again
        except StorageError as err:
            log.warning("index %s/%s: report %s not noted (%s)", container, _index_blob(month), blob, err)
            return False
        HEADS.put(container, blob, entry)
        return True
    log.warning(
        "index %s/%s: report %s not noted after %d attempts", container, _index_blob(month), blob, NOTE_ATTEMPTS
    )
    return False
