"""The opening of a reconcile run: read COMPUTE_SCHEDULES, and in every workspace claim the schedules that need
work (shared/compute/reconcile_state.py); say which workspaces to plan, or that the run is quiet.

A timer run that claims nothing and finds nothing wrong is quiet: no listing, no ARM request, no report (most
minutes hold no boundary). A malformed COMPUTE_SCHEDULES is reported by the first run that sees a value (its
hash is kept), not every minute; an HTTP run always reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.compute.ledger import iso, parse_time
from shared.compute.notices import NoticePlan
from shared.compute.reconcile_state import Opening, ReadState, open_workspace, state_blob
from shared.compute.schedules import Schedule
from shared.payloads import Payload

log = logging.getLogger(__name__)

MAX_STATE_ERRORS = 20  # in a run's output and report; every one is logged


@dataclass(frozen=True)
class OpenRequest(Payload):
    run_id: str
    at: str
    workspaces: tuple[str, ...]
    dry_run: bool = False
    trigger: str = "timer"
    trace: Mapping[str, str] = field(default_factory=dict)
    notice_minutes: float = 0.0  # NOTICE_MINUTES as the run was given it
    notice_error: str | None = None  # why NOTICE_MINUTES could not be read


@dataclass(frozen=True)
class Opened(Payload):
    """What the run goes on with: compact whatever the number of schedules (the claims are in the state blobs)."""

    quiet: bool
    workspaces: tuple[str, ...] = ()  # to plan
    claimed: int = 0  # (workspace, schedule) windows this run holds
    busy: int = 0  # windows another run holds
    default_after: str | None = None  # where a schedule without progress starts
    after: str | None = None  # the earliest start of a claimed window (the report's window)
    schedules_error: str | None = None
    state_errors: tuple[dict[str, str], ...] = ()
    notice_minutes: float = 0.0  # the heads-up's lead time of this run (0: none; see shared.compute.notices)
    notice_error: str | None = None


def _open_all(
    container: str,
    request: OpenRequest,
    schedules: Mapping[str, Schedule],
    at: datetime,
    default_after: datetime,
    notice: timedelta,
) -> list[tuple[str, Opening, ReadState]]:
    from shared.compute.reconcile_state import update_state

    def one(workspace: str) -> tuple[str, Opening, ReadState]:
        def change(read: ReadState) -> tuple[Opening, bool]:
            opening = open_workspace(
                read, schedules, run_id=request.run_id, at=at, dry_run=request.dry_run, notice=notice
            )
            return opening, opening.changed

        opening, read = update_state(container, workspace, at, default_after, change, write=not request.dry_run)
        return workspace, opening, read

    with ThreadPoolExecutor(max(1, min(8, len(request.workspaces)))) as pool:
        return list(pool.map(one, request.workspaces))


def open_run(request: OpenRequest) -> Opened:
    from shared import blobs
    from shared.compute.reconcile import load_schedules
    from shared.compute.reconcile_state import config_error_is_new, load_legacy_default
    from shared.settings import COMPUTE_SCHEDULES, REPORTS_CONTAINER

    container = REPORTS_CONTAINER.get()
    blobs.ensure_container(container)
    at = parse_time(request.at)
    assert at is not None
    http = request.trigger != "timer"
    text = COMPUTE_SCHEDULES.get()
    schedules, config_error = load_schedules(text)
    default_after, legacy_error = load_legacy_default(container, at)
    errors: list[dict[str, str]] = []
    if schedules is None:
        report = http or config_error_is_new(container, text, config_error or "", at)
        if report:
            log.error("reconcile %s: COMPUTE_SCHEDULES is malformed: %s", request.run_id, config_error)
        workspaces = request.workspaces if report else ()
        return Opened(not report, workspaces, default_after=iso(default_after), schedules_error=config_error)
    notice = _notice(request)
    opened = _open_all(container, request, schedules, at, default_after, timedelta(minutes=notice.minutes))
    claimed = [(ws, opening, read) for ws, opening, read in opened if opening.claimed]
    if legacy_error and any(opening.started for _, opening, _ in opened):
        errors.append({"workspace": "", "error": legacy_error})  # it gave the start of a new window
    for ws, _, read in opened:
        for error in read.errors:
            message = f"reconcile state {container}/{state_blob(ws)} was damaged: {error}"
            log.error("reconcile %s: %s", request.run_id, message)
            errors.append({"workspace": ws, "error": message})
    afters = [read.state.schedules[key].done_through for _, opening, read in claimed for key in opening.claimed]
    quiet = not http and not claimed and not errors
    if notice.error and not quiet:
        log.error("reconcile %s: %s", request.run_id, notice.error)
    return Opened(
        quiet=quiet,
        workspaces=request.workspaces if http else tuple(ws for ws, _, _ in claimed),
        claimed=sum(len(opening.claimed) for _, opening, _ in opened),
        busy=sum(len(opening.busy) for _, opening, _ in opened),
        default_after=iso(default_after),
        after=iso(min(afters)) if afters else None,
        state_errors=tuple(_bounded(errors)),
        notice_minutes=notice.minutes,
        notice_error=notice.error,
    )


def _notice(request: OpenRequest) -> NoticePlan:
    """The heads-up's lead time: stop boundaries that close are claimed this far ahead (checked every minute, logged
    only by the runs that act, so a malformed NOTIFY_CHANNELS is not logged by every quiet minute)."""
    from shared.compute.notices import notice_plan

    return notice_plan(request.notice_minutes, request.dry_run, setting_error=request.notice_error, quiet=True)


def _bounded(errors: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    shown = list(errors[:MAX_STATE_ERRORS])
    if len(errors) > MAX_STATE_ERRORS:
        shown.append({"workspace": "", "error": f"... and {len(errors) - MAX_STATE_ERRORS} more (see the log)"})
    return shown
