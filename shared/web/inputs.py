"""Every HTTP request of the app, read: one body parser, then each endpoint's body and query parameters.

Each reader takes what the trigger received (bytes, a query value) and returns the typed input of the job it
starts (a ShutdownRun, an instant, a month), or raises a RequestFieldError in the contract's one wording naming
the field (shared.web.contract); shared.web.answers turns that into the 400 every trigger sends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shared import json_body
from shared.compute.shutdown_run import ShutdownRun, default_run
from shared.errors import RequestFieldError
from shared.settings import ShutdownSettings
from shared.web import contract

_AT = re.compile(contract.AT_PATTERN, re.ASCII)


def json_object(body: bytes | str | None, example: str = "{}") -> Any:
    """The body as parsed JSON; an empty body (or only white space) is `{}`: every JSON body of the API is an
    object whose fields a model checks, so an empty one names the first missing field."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RequestFieldError(
                "body",
                f"body: expected UTF-8 JSON such as {example}, got a byte {body[err.start]:#04x} that is not UTF-8",
            ) from None
    if not (body or "").strip():
        return {}
    try:
        return json_body.loads(body or "")
    except json_body.JsonNumberError as err:
        raise RequestFieldError(err.field, str(err)) from None
    except json.JSONDecodeError as err:
        raise RequestFieldError(
            "body",
            f"body: expected JSON such as {example}, got text that is not JSON "
            f"({err.msg} at line {err.lineno} column {err.colno})",
        ) from None
    except RecursionError:
        raise RequestFieldError("body", f"body: expected JSON such as {example}, got JSON nested too deeply") from None


# --- bodies ----------------------------------------------------------------------------------------------------


def parse_shutdown_body(body: bytes | str | None, settings: ShutdownSettings) -> ShutdownRun:
    """`POST /api/shutdown`: the settings' run, with what the body sets instead (every field is optional)."""
    request = contract.validate(contract.ShutdownBody, json_object(body, '{"dry_run": true}'))
    given = request.model_fields_set
    run = default_run(settings, trigger="http")
    if "dry_run" in given:
        run = replace(run, dry_run=request.dry_run)
    if "workspaces" in given:
        pairs = [(w.key, w.name) for w in settings.workspaces]
        choices = contract.workspace_choices(pairs)
        names = [name.lower() for _, name in pairs]
        resolved = []
        for i, text in enumerate(request.workspaces):
            hint = (
                f"; {text!r} is ambiguous ({names.count(text.lower())} workspaces have that name): name it by its key"
                if names.count(text.lower()) > 1
                else ""
            )
            resolved.append(choices.pick(f"workspaces[{i}]", text, hint=hint))
        run = replace(run, workspaces=tuple(dict.fromkeys(resolved)))  # keeps order, drops repeats
    if "include" in given:
        run = replace(run, include=tuple(contract.strip_blank(p) for p in request.include))
    if "exclude" in given:
        run = replace(run, exclude=tuple(contract.strip_blank(p) for p in request.exclude))
    if "notice_minutes" in given:
        run = replace(run, notice_minutes=float(request.notice_minutes), notice_error=None)
    return run


def parse_instant(value: str, field_name: str = "at") -> datetime:
    """An RFC 3339 date-time of the contract's years as a UTC datetime (fractions below a microsecond dropped)."""
    match = _AT.fullmatch(value)
    if match is None:
        raise contract.refuse(field_name, contract.AT_EXPECTED, value)
    year, month, day = (int(part) for part in match["date"].split("-"))
    offset = match["offset"]
    zone = UTC
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    local = datetime(
        year, month, day, int(match["hour"]), int(match["minute"]), int(match["second"]), int(fraction), zone
    )
    return local.astimezone(UTC)


def parse_preview_body(body: bytes | str | None) -> datetime:
    """`POST /api/schedules/preview` `{"at": "<RFC 3339>"}` -> the instant, in UTC."""
    request = contract.validate(contract.PreviewBody, json_object(body, '{"at": "2026-11-30T08:00:00+01:00"}'))
    return parse_instant(request.at)


def parse_reconcile_body(body: bytes | str | None) -> bool:
    """`POST /api/reconcile` `{"dry_run": bool}` (optional) -> dry_run."""
    return contract.validate(contract.ReconcileBody, json_object(body, '{"dry_run": true}')).dry_run


@dataclass(frozen=True)
class ScoringHttpRequest:
    container: str
    name: str
    force: bool


def parse_scoring_body(body: bytes | str | None, input_container: str) -> ScoringHttpRequest:
    """`POST /api/scoring` `{"container", "name", "force"?}`: a blob of the input container this app scores."""
    from shared.scoring.events import not_scored_reason

    example = f'{{"container": "{input_container}", "name": "heights.csv"}}'
    request = contract.validate(contract.ScoringBody, json_object(body, example))
    choices = contract.container_choices("SCORING_INPUT_CONTAINER", input_container)
    container = choices.pick("container", request.container)
    # The name's pattern already refuses what scoring refuses; this keeps both from drifting apart unnoticed.
    reason = not_scored_reason(container, request.name, input_container)
    if reason:
        raise RequestFieldError("name", f"name: {reason}")
    return ScoringHttpRequest(container=container, name=request.name, force=request.force)


# --- query parameters ------------------------------------------------------------------------------------------


def _query(parameter: contract.QueryParameter, raw: str) -> str:
    too_long = parameter.max_length is not None and len(raw) > parameter.max_length
    if too_long or re.fullmatch(parameter.pattern, raw, re.ASCII) is None:
        raise contract.refuse(parameter.name, parameter.expected, raw)
    return raw


def parse_month(raw: str | None, *, default: datetime | None = None) -> str:
    """`?month=YYYY-MM`; absent: the month of `default` (UTC), or refused when there is no default."""
    if raw is None:
        if default is None:
            raise contract.missing("month", contract.MONTH_EXPECTED)
        return f"{default.astimezone(UTC):%Y-%m}"
    return _query(contract.MONTH, raw)


def parse_run(raw: str | None) -> str | None:
    """`?run=<instance id>` of a saved report, or None (absent) for the latest run."""
    return None if raw is None else _query(contract.RUN, raw)


def parse_format(raw: str | None) -> str:
    """`?format=html|json` of the dashboard (default html)."""
    return "html" if raw is None else _query(contract.FORMAT, raw)


def parse_download(raw: str, containers: tuple[str, ...]) -> tuple[str, str]:
    """`?download=<container>/<name>` -> (container, name): a blob of `containers` named exactly, never a path
    that resolves elsewhere."""
    container, _, name = _query(contract.download_parameter(containers), raw).partition("/")
    return container, name
