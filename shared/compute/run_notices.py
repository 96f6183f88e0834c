"""The notify phase of a compute run: the heads-up of every stop the run will make, one message per owner per run.

It reads the run's ledgers (what each workspace's plan decided; shared/compute/ledger.py) and announces the stops
still to come through shared.compute.notices.send_notices (channels, signed links, the notice records). It runs
beside the workspaces' steps, never before them: a stop is due at its own time whatever a channel does, and the
step reads the owners' choices from the record (shared.compute.postponements.take_due). It never raises: what went
wrong is in the summary, for the run's report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.compute.ledger import Ledger, parse_time
from shared.compute.notices import NoticePlan, NoticeSummary, PlannedStop
from shared.payloads import Payload

log = logging.getLogger(__name__)

MAX_FAILURES = 20  # failed deliveries a report shows (each names its channel and owner; the log has them all)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class NotifyRequest(Payload):
    run_id: str
    workspaces: tuple[str, ...]
    trace: Mapping[str, str] = field(default_factory=dict)


def planned_stops(ledger: Ledger, now: datetime) -> list[PlannedStop]:
    """The stops of one workspace still to come (due after `now`), as the heads-up announces them."""
    out = []
    for item in ledger.items:
        due = parse_time(item.due_at)
        if item.action == "stop" and item.status == "planned" and due is not None and due > now:
            out.append(
                PlannedStop(
                    workspace=ledger.workspace,
                    name=item.name,
                    stop_at=due.isoformat(),
                    reason=item.reason,
                    tags=dict(item.tags),
                    created_by=item.created_by,
                )
            )
    return out


def _ledgers(run_id: str, workspaces: Sequence[str]) -> list[Ledger]:
    from shared.compute.ledger import LedgerStore
    from shared.compute.run_ids import ledger_blob
    from shared.settings import REPORTS_CONTAINER

    container = REPORTS_CONTAINER.get()

    def read(workspace: str) -> Ledger | None:
        return LedgerStore(container).read(ledger_blob(run_id, workspace))

    with ThreadPoolExecutor(max(1, min(8, len(workspaces)))) as pool:
        return [ledger for ledger in pool.map(read, workspaces) if ledger is not None]


def send_run_notices(request: NotifyRequest, now: datetime | None = None, **delivery: Any) -> NoticeSummary:
    """Announce the run's coming stops; a summary whatever happens (its `error` says what kept it from sending)."""
    from shared.compute.notices import send_notices

    moment = now or datetime.now(UTC)
    try:
        ledgers = _ledgers(request.run_id, request.workspaces)
        stops = [stop for ledger in ledgers for stop in planned_stops(ledger, moment)]
        summary = send_notices(request.run_id, stops, moment, **delivery)
    except Exception as err:  # storage, settings, a bug: the stops still happen at their times; the report says why
        log.error("heads-up of run %s not sent: %s", request.run_id, err)
        text = " ".join(str(err).split())[:MAX_ERROR_CHARS]
        return NoticeSummary(error=f"the heads-up was not sent: {type(err).__name__}: {text}")
    for failure in summary.failures:
        log.warning("heads-up of run %s: %s", request.run_id, failure.get("error"))
    return replace(summary, failures=summary.failures[:MAX_FAILURES])


def heads_up(plan: NoticePlan, summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The report head's `heads_up`: the lead time, what the notify phase did, and why there was none when one was
    configured (a malformed setting); None when the run had no heads-up to give (0 minutes, a dry run, no channel)."""
    if plan.minutes <= 0 and not plan.error:
        return None
    out: dict[str, Any] = {"minutes": plan.minutes, **NoticeSummary.from_dict(summary or {}).to_dict()}
    out["error"] = plan.error or out.get("error")
    return out
