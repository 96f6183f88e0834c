"""The shutdown report: per-instance results, per-workspace listing results, totals, and where it is saved.

Pure assembly, called by the (deterministic) orchestrator; times come from its replay-safe clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from shared.compute.arm import ComputeInstance
from shared.compute.policy import Decision
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


@dataclass(frozen=True)
class ShutdownReport(Payload):
    """The report of one shutdown or reconcile run (its blob and the orchestration's output)."""

    instance_id: str
    trigger: str
    dry_run: bool
    mode: str
    started_at: str
    finished_at: str
    workspaces: tuple[WorkspaceResult, ...]
    instances: tuple[InstanceResult, ...]
    totals: dict[str, Any]
    # ARM requests the run's activities sent, counted on the wire (429s and retries included).
    arm_requests: dict[str, int] = field(default_factory=lambda: {"reads": 0, "writes": 0})

    def to_dict(self) -> dict[str, Any]:
        # Not the fields' order: the report's keys (and the derived `seconds`) are a user-facing contract.
        return {
            "instance_id": self.instance_id,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(
                (datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)).total_seconds(),
                3,
            ),
            "totals": dict(self.totals),
            "arm_requests": dict(self.arm_requests),
            "workspaces": [w.to_dict() for w in self.workspaces],
            "instances": [i.to_dict() for i in self.instances],
        }


def result_without_stop(instance: ComputeInstance, decision: Decision) -> InstanceResult:
    """The final result of an instance the policy does not stop (skipped, dry run, already stopped)."""
    outcome: Outcome = "already_stopped" if decision.action == "already_stopped" else "skipped"
    return InstanceResult(
        workspace=instance.workspace,
        name=instance.name,
        state_before=instance.state,
        decision=decision.action,
        reason=decision.reason,
        outcome=outcome,
    )


def stop_result(instance: ComputeInstance, decision: Decision, monitored: Mapping[str, Any]) -> InstanceResult:
    """The result of an instance the orchestration tried to stop; `monitored` is the monitor's output."""
    return acted_result(instance, decision.action, decision.reason, monitored)


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


def totals(instances: Iterable[InstanceResult], workspaces: Iterable[WorkspaceResult]) -> dict[str, Any]:
    results = list(instances)
    counts = Counter(r.outcome for r in results)
    out: dict[str, Any] = {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}
    out["instances"] = len(results)
    out["workspaces"] = 0
    out["workspaces_failed"] = 0
    for w in workspaces:
        out["workspaces"] += 1
        out["workspaces_failed"] += w.error is not None
    priced = [r for r in results if r.estimated_savings is not None]
    out["estimated_savings"] = round(float(sum(r.estimated_savings or 0.0 for r in priced)), 2)
    out["currency"] = next((r.currency for r in priced), None)
    return out


def _utc(moment: datetime) -> datetime:
    # Durable hosts differ: the Functions host's clock is zone-aware, durabletask's is naive UTC. Say it is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def build_report(
    *,
    instance_id: str,
    trigger: str,
    dry_run: bool,
    mode: str,
    started_at: datetime,
    finished_at: datetime,
    workspaces: Iterable[WorkspaceResult],
    instances: Iterable[InstanceResult],
    arm_requests: dict[str, int] | None = None,
) -> ShutdownReport:
    ws = tuple(workspaces)
    results = tuple(sorted(instances, key=lambda r: (r.workspace, r.name)))
    return ShutdownReport(
        instance_id=instance_id,
        trigger=trigger,
        dry_run=dry_run,
        mode=mode,
        started_at=_utc(started_at).isoformat(),
        finished_at=_utc(finished_at).isoformat(),
        workspaces=ws,
        instances=results,
        totals=totals(results, ws),
        arm_requests=dict(arm_requests or {"reads": 0, "writes": 0}),
    )


def progress_status(phase: str, planned: int, done: Iterable[InstanceResult], to_stop: int) -> dict[str, Any]:
    """The orchestration's custom status: a phase and counts a person can follow while it runs."""
    results = list(done)
    counts = Counter(r.outcome for r in results)
    return {
        "phase": phase,
        "instances": planned,
        "to_stop": to_stop,
        "done": len(results),
        **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES},
    }


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
