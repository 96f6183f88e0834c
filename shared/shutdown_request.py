"""What one shutdown run is asked to do: the HTTP body checked against the settings, or the timer's defaults.

Pure functions: the trigger turns a RequestFieldError into a 400 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import json_body
from shared.errors import InputError
from shared.payloads import Payload
from shared.settings import ShutdownSettings, Workspace

ALLOWED_FIELDS = ("dry_run", "workspaces", "include", "exclude")
MAX_PATTERNS = 50
STOP_RETRY_ATTEMPTS = 3


class RequestFieldError(InputError):
    """One field of the request body is wrong; `field` names it (JSON-path-like, e.g. `workspaces[1]`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name

    def to_dict(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


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
    )


def _type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
            type(value), "number" if isinstance(value, int | float) else type(value).__name__
        )
    )


def _string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body[name]
    if not isinstance(value, list):
        raise RequestFieldError(name, f"{name} must be an array of strings, got {_type_name(value)}")
    if len(value) > MAX_PATTERNS:
        raise RequestFieldError(name, f"{name} has {len(value)} items; at most {MAX_PATTERNS} are accepted")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            shown = repr(item) if isinstance(item, str) else _type_name(item)
            raise RequestFieldError(f"{name}[{index}]", f"{name}[{index}] must be a non-empty string, got {shown}")
    return [item.strip() for item in value]


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
    if not isinstance(parsed, dict):
        raise RequestFieldError("body", f"body must be a JSON object, got {_type_name(parsed)}")
    unknown = sorted(set(parsed) - set(ALLOWED_FIELDS))
    if unknown:
        raise RequestFieldError(
            unknown[0], f"unknown field {unknown[0]!r}; accepted fields: {', '.join(ALLOWED_FIELDS)}"
        )
    dry_run = run.dry_run
    if "dry_run" in parsed:
        if not isinstance(parsed["dry_run"], bool):
            raise RequestFieldError(
                "dry_run",
                f"dry_run must be true or false, got {_type_name(parsed['dry_run'])} {parsed['dry_run']!r}",
            )
        dry_run = parsed["dry_run"]
    workspaces = run.workspaces
    if "workspaces" in parsed:
        names = _string_list(parsed, "workspaces")
        if not names:
            raise RequestFieldError("workspaces", "workspaces must name at least one workspace (or be left out)")
        resolved = [_resolve_workspace(n, settings.workspaces, f"workspaces[{i}]") for i, n in enumerate(names)]
        workspaces = tuple(dict.fromkeys(resolved))  # keeps order, drops repeats
    include = tuple(_string_list(parsed, "include")) if "include" in parsed else ()
    exclude = tuple(_string_list(parsed, "exclude")) if "exclude" in parsed else ()
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
    )
