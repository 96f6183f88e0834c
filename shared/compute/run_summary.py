"""What the orchestrations of a compute run keep: counts, sums and a bounded sample, never per-instance lists.

A `Tally` is what one workspace's orchestration returns; a subscription's orchestration merges its workspaces',
the run merges its subscriptions'. Its size depends on the number of workspaces, not of instances: the sample of
failures is capped (`MAX_FAILURES`), and the instances themselves are in the parts of the report (blobs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.compute.report import OUTCOMES, WorkspaceResult, _utc
from shared.payloads import Payload

MAX_FAILURES = 20  # failed / timed_out entries a run's output shows; the report blob has them all


@dataclass(frozen=True)
class Tally(Payload):
    """Counts of a part of a run: its workspaces' listing results, outcomes, savings per currency, ARM requests,
    POSTs sent, the first failures and the report parts (workspace -> blob name)."""

    workspaces: tuple[WorkspaceResult, ...] = ()
    outcomes: dict[str, int] = field(default_factory=dict)
    savings: dict[str, float] = field(default_factory=dict)  # currency -> sum of the entries' estimates
    savings_error: str | None = None
    arm_requests: dict[str, int] = field(default_factory=lambda: {"reads": 0, "writes": 0})
    acted: int = 0  # POSTs sent (a run that sent none and found nothing wrong keeps no report, if it is a timer's)
    failures: tuple[dict[str, Any], ...] = ()
    parts: dict[str, str] = field(default_factory=dict)


def merge(tallies: Iterable[Tally]) -> Tally:
    """One tally of several (in their order); the failures sample stays capped."""
    workspaces: list[WorkspaceResult] = []
    outcomes: Counter[str] = Counter()
    savings: dict[str, float] = {}
    requests = {"reads": 0, "writes": 0}
    failures: list[dict[str, Any]] = []
    parts: dict[str, str] = {}
    errors: list[str] = []
    acted = 0
    for tally in tallies:
        workspaces.extend(tally.workspaces)
        outcomes.update(tally.outcomes)
        for currency, amount in tally.savings.items():
            savings[currency] = savings.get(currency, 0.0) + amount
        for kind in requests:
            requests[kind] += int(tally.arm_requests.get(kind, 0))
        failures.extend(tally.failures[: max(0, MAX_FAILURES - len(failures))])
        parts.update(tally.parts)
        acted += tally.acted
        if tally.savings_error and tally.savings_error not in errors:
            errors.append(tally.savings_error)
    return Tally(
        workspaces=tuple(workspaces),
        outcomes=dict(outcomes),
        savings=savings,
        savings_error="; ".join(errors) or None,
        arm_requests=requests,
        acted=acted,
        failures=tuple(failures),
        parts=parts,
    )


def totals(
    outcomes: Mapping[str, int], workspaces: Iterable[WorkspaceResult], savings: Mapping[str, float]
) -> dict[str, Any]:
    """The report's totals. Savings in different currencies are never added: `estimated_savings_by_currency` has
    each; `estimated_savings` and `currency` are the one currency's, or null when there are several."""
    out: dict[str, Any] = {outcome: int(outcomes.get(outcome, 0)) for outcome in OUTCOMES}
    out["instances"] = sum(int(n) for n in outcomes.values())
    ws = list(workspaces)
    out["workspaces"] = len(ws)
    out["workspaces_failed"] = sum(1 for w in ws if w.error is not None)
    by_currency = {currency: round(float(amount), 2) for currency, amount in sorted(savings.items())}
    if len(by_currency) > 1:
        out["estimated_savings"], out["currency"] = None, None
    else:
        out["estimated_savings"] = next(iter(by_currency.values()), 0.0)
        out["currency"] = next(iter(by_currency), None)
    out["estimated_savings_by_currency"] = by_currency
    return out


def report_head(
    *,
    instance_id: str,
    trigger: str,
    dry_run: bool,
    mode: str,
    started_at: datetime,
    finished_at: datetime,
    workspaces: Iterable[WorkspaceResult],
    tally: Tally,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report without its instances, in the report's key order (every field before `instances`, so a reader
    can stop there): the run's status output and the head of its report blob."""
    ws = list(workspaces)
    start, end = _utc(started_at), _utc(finished_at)
    return {
        "instance_id": instance_id,
        "trigger": trigger,
        "dry_run": dry_run,
        "mode": mode,
        "started_at": start.isoformat(),
        "finished_at": end.isoformat(),
        "seconds": round((end - start).total_seconds(), 3),
        "totals": totals(tally.outcomes, ws, tally.savings),
        "arm_requests": dict(tally.arm_requests),
        "workspaces": [w.to_dict() for w in ws],
        **dict(extra or {}),
        "savings_error": tally.savings_error,
    }


def live_progress(run: Mapping[str, Any] | None, workspaces: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """A running run's progress with its workspaces' own counts summed in: the run's orchestration waits on its
    subscriptions and cannot count while they act; each workspace orchestration's custom status does.

    While no workspace orchestration shows a status yet (the run is planning), the run's own counts stand; once
    the run acts, every workspace it planned has one."""
    out = dict(run or {})
    seen = [w for w in workspaces if isinstance(w, Mapping) and "done" in w]
    if not seen:
        return out
    out["done"] = sum(int(w.get("done", 0)) for w in seen)
    for outcome in OUTCOMES:
        out[outcome] = sum(int(w.get(outcome, 0)) for w in seen)
    out["instances"] = max(int(out.get("instances", 0)), sum(int(w.get("instances", 0)) for w in seen))
    return out
