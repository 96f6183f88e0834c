"""A compute run's report lines: per-instance results, per-workspace listing results, and where the report is saved.

The report itself is streamed from each workspace's part (shared/compute/report_assembly.py) under its head and
totals (shared/compute/run_summary.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.compute.arm import ComputeInstance
from shared.payloads import Payload

Outcome = Literal["stopped", "started", "already_stopped", "skipped", "failed", "timed_out"]
OUTCOMES: tuple[Outcome, ...] = ("stopped", "started", "already_stopped", "skipped", "failed", "timed_out")


@dataclass(frozen=True)
class InstanceResult(Payload):
    """What happened to one instance."""

    workspace: str
    name: str
    state_before: str | None
    decision: str
    reason: str
    outcome: Outcome
    error: str | None = None
    seconds: float = 0.0
    # Savings estimate of an instance the app stopped or started (see shared/compute/savings.py); None otherwise.
    vm_size: str | None = None
    hourly_price: float | None = None
    currency: str | None = None
    price_source: str | None = None
    estimated_hours_saved: float | None = None
    estimated_savings: float | None = None
    # The heads-up (issue 23): {sent_at, channels, postponed_until, postponed_by, error}; None when none was sent.
    notice: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkspaceResult(Payload):
    """How listing one workspace went (a failed listing is reported; the other workspaces go on)."""

    workspace: str
    instances: int
    error: str | None = None


def acted_result(instance: ComputeInstance, decision: str, reason: str, monitored: Mapping[str, Any]) -> InstanceResult:
    """The result of an instance the orchestration tried to stop or start (`monitored`: the monitor's output)."""
    raw = monitored.get("outcome")
    outcome: Outcome = "failed"
    error: str | None = f"monitor returned an unknown outcome {raw!r}"
    for known in OUTCOMES:
        if raw == known:
            outcome, error = known, monitored.get("error")
    if monitored.get("note"):
        reason = f"{reason}; {monitored['note']}"
    return InstanceResult(
        workspace=instance.workspace,
        name=instance.name,
        state_before=instance.state,
        decision=decision,
        reason=reason,
        outcome=outcome,
        error=error,
        seconds=round(float(monitored.get("seconds", 0.0)), 3),
    )


def _utc(moment: datetime) -> datetime:
    # Durable hosts differ: the Functions host's clock is zone-aware, durabletask's is naive UTC. Say it is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def report_blob_name(instance_id: str, started_at: datetime | str, kind: str = "shutdown") -> str:
    """`{kind}/YYYY/MM/DD/{instance_id}.json` (kind: shutdown or reconcile), dated by the run's start (UTC)."""
    start = datetime.fromisoformat(started_at) if isinstance(started_at, str) else started_at
    return f"{kind}/{start:%Y/%m/%d}/{instance_id}.json"


def all_workspaces_failed_message(workspaces: Iterable[WorkspaceResult]) -> str | None:
    """The orchestration fails only when no workspace could be listed; this says why, or None."""
    ws = list(workspaces)
    if not ws or any(w.error is None for w in ws):
        return None
    details = "; ".join(f"{w.workspace}: {w.error}" for w in ws)
    return f"listing failed in every workspace ({len(ws)}): {details}"
