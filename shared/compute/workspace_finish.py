"""The end of a run in one workspace: each instance's report entry (with its savings estimate and its heads-up)
written as the workspace's part of the report, the reconciler's progress moved on (or not), the measured-savings
intervals of its stops opened, the heads-up's record dropped, and a compact tally returned."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.compute.arm import ComputeInstance
from shared.compute.ledger import Ledger, LedgerItem, parse_time
from shared.compute.report import InstanceResult, WorkspaceResult, acted_result
from shared.compute.run_summary import MAX_FAILURES, Tally
from shared.compute.savings import priced_sizes, with_savings
from shared.compute.schedules import Schedule
from shared.payloads import Payload

log = logging.getLogger(__name__)

FAILED_OUTCOMES = ("failed", "timed_out")


@dataclass(frozen=True)
class FinishRequest(Payload):
    run_id: str
    workspace: str
    aborted: str | None = None  # why the workspace's steps ended before every instance had an outcome
    trace: Mapping[str, str] = field(default_factory=dict)


def _instance(ledger: Ledger, item: LedgerItem) -> ComputeInstance:
    tags = {ledger.schedule_tag: item.schedule} if item.schedule else {}
    return ComputeInstance(ledger.workspace, item.name, item.state_before, tags, size=item.vm_size)


def entries(
    ledger: Ledger, aborted: str | None, notices: Mapping[str, dict[str, Any]] | None = None
) -> list[InstanceResult]:
    """One report entry per instance (the same fields as ever, and its heads-up's `notice`, null without one),
    sorted by name; an item without an outcome (the workspace's steps ended early) is `failed`, saying why."""
    out: list[InstanceResult] = []
    for item in sorted(ledger.items, key=lambda i: i.name):
        if item.open:
            sent = "its request was sent" if item.requests else "its request was not sent"
            why = aborted or "the run of this workspace ended first"
            ending: dict[str, Any] = {"outcome": "failed", "error": f"no outcome ({sent}): {why}", "seconds": 0.0}
        else:
            ending = {"outcome": item.outcome, "error": item.error, "note": item.note, "seconds": item.seconds}
        result = acted_result(_instance(ledger, item), item.decision, item.reason, ending)
        notice = (notices or {}).get(item.name, item.notice)
        out.append(replace(result, notice=dict(notice)) if notice else result)
    return out


def notice_entries(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Each announced instance's `notice`, from the run's notice record (what the sender delivered and the owner
    chose); the step's copy in the ledger when the record is gone (a repeated finish) or unreadable."""
    from shared.compute.postponements import RecordError, report_entries

    if ledger.notice_minutes <= 0:
        return {}
    try:
        return report_entries(ledger.run_id, ledger.workspace)
    except RecordError as err:
        log.error("heads-up record of %s in run %s unreadable: %s", ledger.workspace, ledger.run_id, err)
        return {}


def acted_times(ledger: Ledger) -> dict[tuple[str, str], datetime]:
    """When each stop that waited for its heads-up was sent (its savings count from then, not from the run's start)."""
    at = parse_time(ledger.at)
    out = {}
    for item in ledger.items:
        sent, due = parse_time(item.sent_at), parse_time(item.due_at)
        if at is not None and sent is not None and due is not None and due > at:
            out[(ledger.workspace, item.name)] = sent
    return out


def record_measured(ledger: Ledger, results: Sequence[InstanceResult]) -> None:
    """Open a measured-savings interval for each stop the run made and saw confirmed (shared.compute.measured);
    a storage failure is logged, never the run's failure (measurements are a report)."""
    from shared.compute.measured import StoppedInstance, record_stops
    from shared.errors import AppError

    sent = {item.name: item.sent_at for item in ledger.items}
    stops = [
        StoppedInstance(r.name, sent[r.name] or ledger.at, r.hourly_price, r.currency)
        for r in results
        if r.outcome == "stopped" and r.name in sent
    ]
    try:
        record_stops(ledger.workspace, stops)
    except AppError as err:
        log.error("measured savings of %s: the stops of run %s not recorded: %s", ledger.workspace, ledger.run_id, err)


def _prices(sizes: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """Hourly price per VM size (PRICE_OVERRIDES, else the retail API, cached), or why there is none."""
    from shared.compute.prices import prices
    from shared.errors import SettingsError

    if not sizes:
        return {}, None
    try:
        found = prices(sizes)
    except SettingsError as err:  # a malformed PRICE_OVERRIDES: the report says so, the run goes on
        log.error("no prices: %s", err)
        return dict.fromkeys(sizes, str(err)), str(err)  # each instance says why
    return {size: p if isinstance(p, str) else p.to_dict() for size, p in found.items()}, None


def priced(
    ledger: Ledger, results: list[InstanceResult], schedules: Mapping[str, Schedule] | None
) -> tuple[list[InstanceResult], str | None]:
    """The results with their savings estimates (VM size x hourly price x hours the stop saves)."""
    listed = {(ledger.workspace, item.name): _instance(ledger, item) for item in ledger.items}
    sizes = priced_sizes(results, listed)
    if not sizes:
        return results, None
    try:
        prices, error = _prices(sizes)
    except Exception as err:  # the prices API or its cache: estimates are a nicety, the run's record is not
        prices, error = {}, f"prices not read: {' '.join(str(err).split())[:500]}"
    at = parse_time(ledger.at)
    assert at is not None
    return (
        with_savings(
            results,
            listed,
            prices,
            at,
            schedules=schedules,
            tag=ledger.schedule_tag,
            shutdown_schedule=ledger.shutdown_schedule,
            acted_at=acted_times(ledger),
        ),
        error,
    )


def tally(ledger: Ledger, results: Sequence[InstanceResult], part: str, savings_error: str | None) -> Tally:
    savings: dict[str, float] = {}
    for r in results:
        if r.estimated_savings is not None and r.currency:
            savings[r.currency] = savings.get(r.currency, 0.0) + r.estimated_savings
    failures = [r.to_dict() for r in results if r.outcome in FAILED_OUTCOMES][:MAX_FAILURES]
    return Tally(
        workspaces=(WorkspaceResult(ledger.workspace, ledger.listed, ledger.error),),
        outcomes=dict(Counter(r.outcome for r in results)),
        savings=savings,
        savings_error=savings_error,
        arm_requests=dict(ledger.arm_requests),
        acted=sum(item.requests for item in ledger.items),
        failures=tuple(failures),
        parts={ledger.workspace: part},
    )


def part_json(results: Sequence[InstanceResult]) -> bytes:
    """The workspace's part of the report: its entries as a JSON array, one per line."""
    lines = ",\n".join(json.dumps(r.to_dict(), separators=(", ", ": ")) for r in results)
    return ("[\n" + lines + "\n]\n").encode("utf-8") if results else b"[]\n"


def claim_outcomes(ledger: Ledger, aborted: str | None) -> dict[str, str | None]:
    """Per schedule this run claimed here: None when its window was acted on in full, else why not (the claim is
    then released without moving the progress: the next run acts on the same window)."""
    out: dict[str, str | None] = {}
    for key in ledger.claims:
        items = [item for item in ledger.items if (item.schedule or "").lower() == key]
        outage = [item for item in items if item.arm_outage]
        if ledger.error:
            out[key] = f"listing failed: {ledger.error}"
        elif aborted:
            out[key] = f"the run ended early: {aborted}"
        elif outage:
            out[key] = f"ARM did not take {len(outage)} request(s): {outage[0].error}"
        else:
            out[key] = None
    return out


def finish_workspace(request: FinishRequest, now: datetime | None = None) -> Tally:
    """Entries, savings, the part blob, the reconciler's progress; the workspace's tally."""
    from shared import blobs
    from shared.compute.ledger import LedgerStore
    from shared.compute.reconcile import load_schedules
    from shared.compute.reconcile_state import ReadState, release, update_state
    from shared.compute.run_ids import ledger_blob, part_blob
    from shared.errors import ComputeError
    from shared.settings import COMPUTE_SCHEDULES, REPORTS_CONTAINER

    container = REPORTS_CONTAINER.get()
    ledger = LedgerStore(container).read(ledger_blob(request.run_id, request.workspace))
    if ledger is None:
        raise ComputeError(f"the ledger of run {request.run_id} in {request.workspace} does not exist")
    schedules, _ = load_schedules(COMPUTE_SCHEDULES.get())
    results, savings_error = priced(ledger, entries(ledger, request.aborted, notice_entries(ledger)), schedules)
    part = part_blob(request.run_id, request.workspace)
    blobs.upload(container, part, part_json(results), content_type="application/json")
    if ledger.kind == "reconcile" and ledger.claims and not ledger.dry_run:
        outcomes = claim_outcomes(ledger, request.aborted)
        moment = now or datetime.now(UTC)

        def change(read: ReadState) -> tuple[None, bool]:
            return None, release(read.state, ledger.claims, ledger.run_id, outcomes)

        update_state(container, ledger.workspace, moment, moment, change)
    if not ledger.dry_run:
        record_measured(ledger, results)
    if ledger.notice_minutes > 0:
        from shared.compute.postponements import delete_record

        delete_record(ledger.run_id, ledger.workspace)  # last: its links answer 410 from now (the run is over)
    return tally(ledger, results, part, savings_error)
