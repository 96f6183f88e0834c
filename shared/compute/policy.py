"""The shutdown policy: a pure decision per compute instance (state x tags x mode x name patterns x dry run).

Every decision carries a human reason, which the report shows as is.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shared.compute.arm import ComputeInstance
from shared.payloads import Payload

Action = Literal["stop", "would_stop", "skip", "already_stopped"]
Mode = Literal["opt-out", "opt-in"]

EXEMPT_VALUES = frozenset({"off", "false", "no", "0", "exempt", "never", "disabled"})
OPT_IN_VALUES = frozenset({"on", "true", "yes", "1", "enabled"})
STOPPED_OR_STOPPING = frozenset({"Stopped", "Stopping"})
FAILED_STATES = frozenset({"CreateFailed", "SetupFailed", "UserSetupFailed", "Unusable"})


@dataclass(frozen=True)
class Decision(Payload):
    """What to do with one instance and why."""

    action: Action
    reason: str

    @property
    def stops(self) -> bool:
        return self.action == "stop"


def _tag(tags: Mapping[str, str], name: str) -> str | None:
    # Azure tag names are case-insensitive.
    wanted = name.lower()
    for key, value in tags.items():
        if key.lower() == wanted:
            return value.strip()
    return None


def _matches(name: str, pattern: str) -> bool:
    # Compute instance names are case-insensitive in Azure ML, so the globs are too.
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (`Z` or offset; a date alone means its midnight); without a zone it is taken as UTC."""
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def decide(
    instance: ComputeInstance,
    *,
    mode: Mode | str = "opt-out",
    exempt_tag: str = "auto-shutdown",
    keep_alive_tag: str = "keep-alive-until",
    now: datetime,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    dry_run: bool = False,
    stop_job_running: bool = False,
    schedule_tag: str | None = None,
) -> Decision:
    """Decide whether to stop `instance`. `now` comes from the caller (the orchestration's replay-safe clock).

    Order: the instance's own state first (a stopped one is reported as such whatever the policy), then the
    name patterns, then states that are not safe to stop, then tags (exemption / opt-in, keep-alive).
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    notes: list[str] = []
    verdict = (
        _by_state_or_schedule(instance, schedule_tag)
        or _by_name(instance.name, include, exclude)
        or _by_safety(instance.state, stop_job_running)
        or _by_exempt_tag(instance.tags, mode, exempt_tag, notes)
        or _by_keep_alive(instance.tags, keep_alive_tag, now, notes)
    )
    if verdict is not None:
        return verdict
    basis = f"{instance.state}, {mode} mode" + ("".join(f"; {n}" for n in notes))
    if dry_run:
        return Decision("would_stop", f"dry run: would stop ({basis})")
    return Decision("stop", f"stop ({basis})")


def _by_state_or_schedule(instance: ComputeInstance, schedule_tag: str | None) -> Decision | None:
    if instance.state in STOPPED_OR_STOPPING:
        return Decision("already_stopped", f"already {instance.state}")
    # An instance that follows a working-hours schedule is governed by it alone (a New York team's day ends
    # after the nightly UTC run): the nightly policy leaves it to the reconciler.
    schedule = _tag(instance.tags, schedule_tag) if schedule_tag else None
    if schedule:
        return Decision("skip", f"follows schedule {schedule} ({schedule_tag})")
    return None


def _by_name(name: str, include: Sequence[str], exclude: Sequence[str]) -> Decision | None:
    if include and not any(_matches(name, p) for p in include):
        return Decision("skip", f"name matches none of the include patterns {list(include)}")
    excluded_by = next((p for p in exclude if _matches(name, p)), None)
    if excluded_by is not None:
        return Decision("skip", f"name matches the exclude pattern {excluded_by!r}")
    return None


def _by_safety(state: str, stop_job_running: bool) -> Decision | None:
    """States that are not safe (or pointless) to stop."""
    if state == "JobRunning":
        if not stop_job_running:
            return Decision("skip", "JobRunning: a job is running on it, not interrupted")
    elif state in FAILED_STATES:
        return Decision("skip", f"state {state}: the instance is in a failed state, nothing to stop")
    elif state != "Running":
        return Decision("skip", f"state {state}: not Running (transitional or unknown), left alone")
    return None


def _by_exempt_tag(tags: Mapping[str, str], mode: str, exempt_tag: str, notes: list[str]) -> Decision | None:
    """Opt-in needs the tag on; opt-out honours an exemption value. What does not decide is noted in `notes`."""
    tag_value = _tag(tags, exempt_tag)
    if mode == "opt-in":
        if tag_value is None or tag_value.lower() not in OPT_IN_VALUES:
            shown = "not tagged" if tag_value is None else f"tagged {exempt_tag}={tag_value!r}"
            return Decision("skip", f"opt-in mode: {shown}; only {exempt_tag}=on|true|yes is stopped")
        notes.append(f"opted in with {exempt_tag}={tag_value}")
    elif tag_value is not None:
        if tag_value.lower() in EXEMPT_VALUES:
            return Decision("skip", f"exempt: tagged {exempt_tag}={tag_value}")
        if tag_value.lower() not in OPT_IN_VALUES:
            notes.append(f"tag {exempt_tag}={tag_value!r} is not an exemption value (off/false/exempt)")
    return None


def _by_keep_alive(tags: Mapping[str, str], keep_alive_tag: str, now: datetime, notes: list[str]) -> Decision | None:
    """A keep-alive time still ahead keeps the instance; an expired or unreadable one is noted in `notes`."""
    keep_alive = _tag(tags, keep_alive_tag)
    if not keep_alive:
        return None
    try:
        until = parse_time(keep_alive)
    except ValueError:
        notes.append(f"{keep_alive_tag}={keep_alive!r} is not an ISO 8601 time: not honoured")
        return None
    if until > now:
        return Decision("skip", f"kept alive until {until.isoformat()} ({keep_alive_tag})")
    notes.append(f"keep-alive expired at {until.isoformat()}")
    return None
