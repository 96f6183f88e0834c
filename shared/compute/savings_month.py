"""`GET /api/savings?month=YYYY-MM`: the estimated savings of a month, summed from the saved reports."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from shared.settings import REPORTS_CONTAINER

log = logging.getLogger(__name__)

MONTH_RE = re.compile(r"^(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])$")
KINDS = ("shutdown", "reconcile")


def parse_month(value: str | None) -> tuple[int, int]:
    from shared.compute.shutdown_run import RequestFieldError

    match = MONTH_RE.match((value or "").strip())
    if not match:
        raise RequestFieldError("month", f"month={value!r} is not a month; expected YYYY-MM, e.g. 2026-11")
    return int(match["year"]), int(match["month"])


def month_savings(year: int, month: int, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    from shared import blobs

    container = REPORTS_CONTAINER.get(env)
    total = 0.0
    currencies: set[str] = set()
    by_kind: dict[str, float] = {kind: 0.0 for kind in KINDS}
    stopped = started = reports = 0
    unreadable: list[str] = []
    for kind in KINDS:
        for name in blobs.list_names(container, f"{kind}/{year:04d}/{month:02d}/", env):
            info = blobs.find_blob(container, name, env)
            if info is None:
                continue
            try:
                report = json.loads(blobs.read_range(container, name, 0, info.size, env=env))
                totals = report["totals"]
                savings = float(totals.get("estimated_savings") or 0.0)
            except (ValueError, KeyError, TypeError) as err:
                log.warning("report %s/%s not summed: %s", container, name, err)
                unreadable.append(name)
                continue
            if report.get("dry_run"):
                continue  # a dry run saved nothing
            reports += 1
            total += savings
            by_kind[kind] += savings
            stopped += int(totals.get("stopped", 0))
            started += int(totals.get("started", 0))
            if totals.get("currency"):
                currencies.add(str(totals["currency"]))
    return {
        "month": f"{year:04d}-{month:02d}",
        "estimated_savings": round(total, 2),
        "currency": ",".join(sorted(currencies)) or None,
        "by_kind": {k: round(v, 2) for k, v in by_kind.items()},
        "reports": reports,
        "stopped": stopped,
        "started": started,
        "unreadable_reports": unreadable,
    }
