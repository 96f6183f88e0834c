"""How big an orchestration grew, read as an operator reads it: the Durable HTTP API's status with `showHistory`,
`showHistoryOutput` and `showInput` (issue 20's bound: no history above 1 MB, no message above 256 KB)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.devhost_runner import RunningHost

DURABLE = "/runtime/webhooks/durabletask"
HISTORY_BOUND = 1024 * 1024
MESSAGE_BOUND = 256 * 1024


@dataclass(frozen=True)
class OrchestrationSize:
    """One orchestration: its history's size and its largest message, in bytes of JSON text."""

    instance_id: str
    name: str
    events: int
    history_bytes: int
    largest_message_bytes: int
    largest_message: str  # which one: "input", "output", "customStatus" or "<EventType> #<n> Input|Result"


def _payload_bytes(value: Any) -> int:
    """Bytes of a payload as it travels: JSON text (a string from the history already is JSON text)."""
    if value is None:
        return 0
    return len(value.encode() if isinstance(value, str) else json.dumps(value).encode())


def measure(host: RunningHost, instance_id: str) -> OrchestrationSize:
    """The history (every event with its payload) and the largest single message of one orchestration."""
    response = host.request(
        "GET",
        f"{DURABLE}/instances/{instance_id}",
        params={"showHistory": "true", "showHistoryOutput": "true", "showInput": "true"},
        timeout=120,
    )
    response.raise_for_status()
    status = response.json()
    events: list[dict[str, Any]] = status.get("historyEvents") or []
    messages = {
        "input": _payload_bytes(status.get("input")),
        "output": _payload_bytes(status.get("output")),
        "customStatus": _payload_bytes(status.get("customStatus")),
    }
    for n, event in enumerate(events):
        for key in ("Input", "Result"):
            messages[f"{event.get('EventType')} #{n} {key}"] = _payload_bytes(event.get(key))
    where = max(messages, key=lambda k: messages[k])
    return OrchestrationSize(
        instance_id=instance_id,
        name=str(status.get("name")),
        events=len(events),
        history_bytes=len(json.dumps(events).encode()),
        largest_message_bytes=messages[where],
        largest_message=where,
    )


def measure_run(host: RunningHost, instance_id: str) -> list[OrchestrationSize]:
    """The run and every sub-orchestration it started (their ids begin with the run's)."""
    response = host.request("GET", f"{DURABLE}/instances", params={"instanceIdPrefix": instance_id}, timeout=60)
    response.raise_for_status()
    return [measure(host, str(item["instanceId"])) for item in response.json()]
