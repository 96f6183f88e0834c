"""What one shutdown run is asked to do: the timer's run from the settings (an HTTP body changes some of its fields:
shared.web.inputs.parse_shutdown_body)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.payloads import Payload
from shared.settings import ShutdownSettings

STOP_RETRY_ATTEMPTS = 3


@dataclass(frozen=True)
class ShutdownRun(Payload):
    """The orchestration's input: small, JSON-able, everything the deterministic orchestrator needs."""

    workspaces: tuple[str, ...]
    dry_run: bool
    mode: str
    exempt_tag: str
    keep_alive_tag: str
    stop_timeout_seconds: int
    poll_seconds: int
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    trigger: str = "http"
    stop_retry_attempts: int = STOP_RETRY_ATTEMPTS
    # W3C trace context of the trigger: every activity's span joins the same trace (one run = one operation).
    trace: Mapping[str, str] = field(default_factory=dict)
    schedule_tag: str = "compute-schedule"  # instances tagged so follow their schedule, not the nightly stop
    shutdown_schedule: str = "0 0 22 * * *"  # the nightly NCRONTAB: hours saved by a stop run until its next run
    # NOTICE_MINUTES, or the body's notice_minutes: the heads-up before each stop (shared.compute.notices decides
    # whether one is sent at all: not in a dry run, not without channels)
    notice_minutes: float = 30.0
    notice_error: str | None = None  # why NOTICE_MINUTES could not be read (the run then has no heads-up)


def default_run(settings: ShutdownSettings, trigger: str = "timer") -> ShutdownRun:
    """Every configured workspace, the configured dry-run default, no name patterns."""
    return ShutdownRun(
        workspaces=tuple(w.key for w in settings.workspaces),
        dry_run=settings.dry_run,
        mode=settings.mode,
        exempt_tag=settings.exempt_tag,
        keep_alive_tag=settings.keep_alive_tag,
        stop_timeout_seconds=settings.stop_timeout_seconds,
        poll_seconds=settings.poll_seconds,
        trigger=trigger,
        schedule_tag=settings.schedule_tag,
        shutdown_schedule=settings.shutdown_schedule,
        notice_minutes=settings.notice_minutes,
        notice_error=settings.notice_error,
    )
