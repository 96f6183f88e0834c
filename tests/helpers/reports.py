"""Saved run reports as the compute runs write them, in each shape they have had, uploaded to a devhost's Azurite:
for the dashboard's and /api/savings' tests (what they read is exactly what is stored)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from tests.devhost_runner import RunningHost
from tests.helpers.storage import blob_service, ensure_container

REPORTS = "reports"
WS = "0a1b2c3d-0000-4000-8000-00000000da5b/rg-ops/ws-dash"


def entry(i: int, *, currency: str | None = "USD", outcome: str = "stopped") -> dict[str, Any]:
    """One instance's entry, as a report lists it (savings fields when it was priced)."""
    out: dict[str, Any] = {
        "workspace": WS,
        "name": f"ci-{i:05d}",
        "state_before": "Running",
        "decision": "stop",
        "reason": "stop (Running, opt-out mode)",
        "outcome": outcome,
        "error": None,
        "seconds": 12.5,
    }
    if currency is not None:
        out |= {
            "vm_size": "STANDARD_DS3_V2",
            "hourly_price": 0.293,
            "currency": currency,
            "price_source": "retail",
            "estimated_hours_saved": 10.0,
            "estimated_savings": 2.93,
        }
    return out


def report(
    run_id: str,
    started: datetime,
    instances: int,
    *,
    totals: dict[str, Any] | None = None,
    dry_run: bool = False,
    workspaces: int = 1,
    tail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A report in the key order the runs write (head first, `instances`, then `tail`: older reconcile reports
    put `window`, `schedules_error`, `report_blob` there)."""
    out: dict[str, Any] = {
        "instance_id": run_id,
        "trigger": "timer",
        "dry_run": dry_run,
        "mode": "opt-out",
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=40)).isoformat(),
        "seconds": 40.0,
        "totals": totals if totals is not None else {"stopped": instances, "instances": instances},
        "arm_requests": {"reads": 2, "writes": instances},
        "workspaces": [
            {"workspace": f"{WS}-{w}" if w else WS, "instances": instances, "error": None} for w in range(workspaces)
        ],
        "instances": [entry(i) for i in range(instances)],
    }
    return out | (tail or {})


def blob_name(kind: str, started: datetime, run_id: str) -> str:
    return f"{kind}/{started:%Y/%m/%d}/{run_id}.json"


def upload_all(host: RunningHost, blobs: dict[str, bytes], *, workers: int = 8) -> None:
    """Upload every blob (name -> content) into the reports container, a few at once."""
    container = ensure_container(blob_service(host), REPORTS)

    def put(item: tuple[str, bytes]) -> None:
        container.get_blob_client(item[0]).upload_blob(item[1], overwrite=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, blobs.items()))


def as_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()
