"""The ledger of one compute run in one workspace: what the plan decided for each instance and how far each got.

One JSON blob per (run, workspace), `runs/{run_id}/{ws12}.ledger.json` in the reports container. The plan activity
writes it, the step activity alone advances it (the workspace's orchestration calls its steps one at a time, and
every write is conditional on the ETag that was read: a step that lost a race raises and is run again), the
finish activity reads it. Per-instance data lives here, never in an orchestration's history.

An item's `status`: planned -> sending -> sent | in_transition | retryable -> done (with its `outcome`). An item
is marked `sending` in storage BEFORE its POST goes out, so a step that dies mid-way never sends it twice: the
next step finds it `sending` and asks ARM (by listing) whether the request arrived.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from shared.payloads import Payload

Status = Literal["planned", "sending", "sent", "in_transition", "retryable", "done"]
AWAITING: frozenset[str] = frozenset({"sending", "sent", "in_transition"})  # a request may be under way
TARGET = {"stop": "Stopped", "start": "Running"}
DONE_OUTCOME = {"stop": "stopped", "start": "started"}


def iso(moment: datetime) -> str:
    return utc(moment).isoformat()


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str | None) -> datetime | None:
    return None if not text else utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass
class LedgerItem(Payload):
    """One instance of the workspace: its decision and its way to an outcome (mutable: the step advances it)."""

    name: str
    state_before: str
    decision: str  # the report's decision: stop, start, skip, would_stop, already_stopped, ...
    reason: str
    action: str = "none"  # stop | start | none: what the run sends to ARM
    vm_size: str | None = None
    schedule: str | None = None  # the value of the schedule tag (savings: hours until the schedule's next start)
    created_by: dict[str, str] | None = None  # ARM's createdBy (the heads-up notice's fallback recipient)
    tags: dict[str, str] = field(default_factory=dict)  # the instance's tags (the owner tag of the heads-up notice)
    boundary: str | None = None  # reconcile: the schedule boundary this action is for
    due_at: str | None = None  # when it may be sent: the plan's time (the run's start + the heads-up, a boundary)
    # reconcile: the schedule's next start after this stop; a stop still waiting then (postponed past it) is not
    # sent: the schedule wants the instance running again
    not_after: str | None = None
    status: str = "planned"
    requests: int = 0  # POSTs sent (a re-send after a 409 or a 429/5xx counts)
    sent_at: str | None = None  # when the last POST was about to go out
    first_sent_at: str | None = None  # when the first did: the timeout counts from here
    last_state: str | None = None
    answer: str = ""  # ARM's last answer to a POST: stopping, in_transition, retryable, ...
    message: str = ""
    outcome: str | None = None
    error: str | None = None
    note: str | None = None
    seconds: float = 0.0
    arm_outage: bool = False  # ended failed because ARM kept answering 429/5xx: the boundary is retried later
    postponed_until: str | None = None  # the owner's choice through the heads-up's link (copied by the step)
    postponed_by: str | None = None
    notice: dict[str, Any] | None = None  # the report's `notice` as the step last read it from the notice record

    @property
    def open(self) -> bool:
        return self.status != "done"

    def end(self, outcome: str, now: datetime, *, error: str | None = None, note: str | None = None) -> None:
        self.status, self.outcome, self.error, self.note = "done", outcome, error, note
        started = parse_time(self.first_sent_at)
        self.seconds = round((utc(now) - started).total_seconds(), 3) if started else 0.0


@dataclass
class Ledger(Payload):
    """The ledger blob: the run's parameters the steps need, the listing's result, the items."""

    run_id: str
    kind: str  # shutdown | reconcile
    workspace: str
    at: str  # the instant the plan decided at (savings are estimated from it)
    dry_run: bool = False
    poll_seconds: int = 30
    timeout_seconds: int = 1200
    attempts: int = 3  # sends of a request answered 429/5xx before it fails
    listed: int = 0
    error: str | None = None  # the workspace could not be listed
    schedule_tag: str = "compute-schedule"
    shutdown_schedule: str = "0 0 22 * * *"
    notice_minutes: float = 0.0  # the heads-up's lead time (0: none; the step then reads no notice record)
    claims: dict[str, str] = field(default_factory=dict)  # reconcile: schedule (lower case) -> through (ISO)
    lease_until: str | None = None  # reconcile: until when this run's claims are known to be its own
    last_listed_at: str | None = None
    arm_requests: dict[str, int] = field(default_factory=lambda: {"reads": 0, "writes": 0})
    steps: int = 0
    items: tuple[LedgerItem, ...] = ()

    def count(self, reads: int = 0, writes: int = 0) -> None:
        self.arm_requests = {
            "reads": self.arm_requests.get("reads", 0) + reads,
            "writes": self.arm_requests.get("writes", 0) + writes,
        }

    def open_items(self) -> list[LedgerItem]:
        return [item for item in self.items if item.open]

    def progress(self) -> dict[str, Any]:
        """Counts a person can follow (the workspace orchestration's custom status)."""
        statuses = Counter(item.status for item in self.items)
        outcomes = Counter(item.outcome for item in self.items if item.outcome)
        return {
            "workspace": self.workspace,
            "instances": len(self.items),
            "to_act": sum(1 for item in self.items if item.action != "none"),
            "done": statuses.get("done", 0),
            "sending": statuses.get("sending", 0),
            "waiting": sum(statuses.get(s, 0) for s in ("sent", "in_transition", "retryable")),
            **dict(sorted(outcomes.items())),
        }

    def to_json(self) -> bytes:
        # One item per line: a person reading the blob sees each instance on its own line.
        head = {k: v for k, v in self.to_dict().items() if k != "items"}
        lines = ",\n".join(json.dumps(item.to_dict(), separators=(",", ":")) for item in self.items)
        return (json.dumps(head)[:-1] + ', "items": [\n' + lines + "\n]}\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Ledger:
        raw = json.loads(data)
        if not isinstance(raw, Mapping):
            raise ValueError("a ledger is a JSON object")
        return cls.from_dict(raw)


class LedgerStore:
    """The ledgers of a run in the reports container, read and written conditionally on their ETags."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.etags: dict[str, str] = {}

    def read(self, blob: str) -> Ledger | None:
        from shared import blobs

        found = blobs.read_blob_etag(self.container, blob)
        if found is None:
            return None
        self.etags[blob] = found[1]
        return Ledger.from_json(found[0])

    def write(self, blob: str, ledger: Ledger, *, create: bool = False) -> None:
        """Write `ledger`: a new blob (`create`), or over the version last read or written here. Another writer in
        between raises OutputChangedError (the caller's step is then run again from what that writer left)."""
        from shared import blobs

        etag = None if create else self.etags.get(blob)
        if not create and etag is None:
            raise ValueError(f"{blob}: a ledger is written over the version read, and none was read")
        self.etags[blob] = blobs.upload_if(
            self.container, blob, ledger.to_json(), content_type="application/json", if_match=etag
        )
