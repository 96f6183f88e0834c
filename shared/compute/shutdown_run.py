"""What one shutdown run is asked to do: the HTTP body checked against the settings, or the timer's defaults.

Pure functions: the trigger turns a RequestFieldError into a 400 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared import json_body
from shared.errors import RequestFieldError
from shared.payloads import Payload
from shared.settings import ShutdownSettings, Workspace

__all__ = ["RequestFieldError", "ShutdownRun", "default_run", "parse_shutdown_body"]  # RequestFieldError: re-exported
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
    )


def _resolve_workspace(text: str, configured: Sequence[Workspace], field_name: str) -> str:
    """A configured workspace named by its full key or, when unambiguous, by its workspace name alone."""
    wanted = text.strip().strip("/").lower()
    by_key = [w for w in configured if w.key.lower() == wanted]
    by_name = [w for w in configured if w.name.lower() == wanted]
    if by_key:
        return by_key[0].key
    if len(by_name) == 1:
        return by_name[0].key
    known = ", ".join(w.key for w in configured)
    if len(by_name) > 1:
        raise RequestFieldError(
            field_name,
            f"workspace {text!r} is ambiguous; name it as subscription/resource-group/workspace ({known})",
        )
    raise RequestFieldError(field_name, f"workspace {text!r} is not configured in AML_WORKSPACES (configured: {known})")


def parse_shutdown_body(body: bytes | str | None, settings: ShutdownSettings) -> ShutdownRun:
    """Validate the optional JSON body of `POST /api/shutdown`; RequestFieldError names the bad field."""
    run = default_run(settings, trigger="http")
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else (body or "")
    if not text.strip():
        return run
    try:
        parsed = json_body.loads(text)
    except json_body.JsonNumberError as err:
        raise RequestFieldError(err.field, str(err)) from None
    except json.JSONDecodeError as err:
        raise RequestFieldError(
            "body", f"body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise RequestFieldError("body", "body is nested too deeply; expected a flat JSON object") from None
    # The model (shared.web.contract, also the OpenAPI schema) checks types, lengths and unknown fields;
    # imported here, not at module level: pydantic is not loaded when the app is indexed.
    from shared.web.contract import ShutdownBody, validate

    request = validate(ShutdownBody, parsed)
    given = request.model_fields_set
    dry_run = request.dry_run if "dry_run" in given else run.dry_run
    workspaces = run.workspaces
    if "workspaces" in given:
        names = [name.strip() for name in request.workspaces]
        resolved = [_resolve_workspace(n, settings.workspaces, f"workspaces[{i}]") for i, n in enumerate(names)]
        workspaces = tuple(dict.fromkeys(resolved))  # keeps order, drops repeats
    include = tuple(p.strip() for p in request.include) if "include" in given else ()
    exclude = tuple(p.strip() for p in request.exclude) if "exclude" in given else ()
    return ShutdownRun(
        workspaces=workspaces,
        dry_run=dry_run,
        mode=run.mode,
        exempt_tag=run.exempt_tag,
        keep_alive_tag=run.keep_alive_tag,
        stop_timeout_seconds=run.stop_timeout_seconds,
        poll_seconds=run.poll_seconds,
        include=include,
        exclude=exclude,
        trigger="http",
        schedule_tag=run.schedule_tag,
        shutdown_schedule=run.shutdown_schedule,
        notice_minutes=request.notice_minutes if "notice_minutes" in given else run.notice_minutes,
    )
