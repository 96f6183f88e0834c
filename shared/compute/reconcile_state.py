"""The reconciler's progress per workspace: how far each schedule was acted on, and which run holds it now.

`reconcile/state/{subscription}/{resource-group}/{workspace}.json` in the reports container:

    {"version": 1, "workspace": "...",
     "schedules": {"<schedule, lower case>": {"done_through": ISO, "claim": null | {"run": id, "through": ISO,
                   "lease_until": ISO, "at": ISO}, "failures": 0, "last_error": null}}}

A run acts for a schedule only after claiming its window (done_through, through] with a conditional write
(ETag), so overlapping runs never act twice on one boundary; `done_through` moves only past what was acted on
(a failed listing or an ARM outage releases the claim without moving it: the next run acts instead); a claim
whose run died expires after `LEASE` and the next run takes over. A state that cannot be trusted (not JSON,
wrong shape, a time without offset or out of range) is repaired to a bounded catch-up and reported, never a
crash loop or a window frozen in the future. Pure functions here; the blob I/O is `update_state`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from shared.compute.ledger import iso, utc
from shared.compute.schedules import Schedule

VERSION = 1
LEGACY_BLOB = "reconcile/state.json"  # the one window of every workspace, before per-workspace progress
STATE_PREFIX = "reconcile/state/"
CONFIG_BLOB = f"{STATE_PREFIX}config.json"  # the last malformed COMPUTE_SCHEDULES reported (its hash)
TICK = timedelta(minutes=1)  # a first run's window reaches back one tick of the minute timer
LEASE = timedelta(minutes=3)  # a claim's life without renewal: a dead run's boundaries wait at most this long
MAX_CATCH_UP = timedelta(days=7)  # progress older than this is not trusted (repaired)
MAX_AHEAD = timedelta(days=1)  # nor progress in the future beyond this
REPAIR_CATCH_UP = timedelta(hours=1)  # what a repaired state catches up
IDLE_ADVANCE = timedelta(hours=12)  # a schedule without boundaries moves on at least this often
UPDATE_ATTEMPTS = 20

T = TypeVar("T")


class DamagedStateError(ValueError):
    """A state blob (or part of it) that cannot be trusted; the message says what is wrong."""


@dataclass
class Claim:
    run: str
    through: datetime  # the window's end: `at`, or a stop boundary ahead of it (claimed early for its heads-up)
    lease_until: datetime
    at: datetime
    taken_from: str | None = None  # the run whose expired claim this one took over (its heads-up is carried over)

    def live(self, now: datetime) -> bool:
        return self.lease_until > now

    def to_dict(self) -> dict[str, str]:
        out = {
            "run": self.run,
            "through": iso(self.through),
            "lease_until": iso(self.lease_until),
            "at": iso(self.at),
        }
        if self.taken_from:
            out["taken_from"] = self.taken_from
        return out


@dataclass
class Progress:
    done_through: datetime
    claim: Claim | None = None
    failures: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "done_through": iso(self.done_through),
            "claim": self.claim.to_dict() if self.claim else None,
            "failures": self.failures,
            "last_error": self.last_error,
        }


@dataclass
class WorkspaceState:
    workspace: str
    schedules: dict[str, Progress] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "version": VERSION,
            "workspace": self.workspace,
            "schedules": {key: p.to_dict() for key, p in sorted(self.schedules.items())},
        }
        return json.dumps(body, indent=1).encode("utf-8")


def state_blob(workspace: str) -> str:
    """`reconcile/state/{sub}/{rg}/{ws}.json`, lower case (ARM names are case-insensitive)."""
    return f"{STATE_PREFIX}{workspace.strip().strip('/').lower()}.json"


def is_state_blob(name: str) -> bool:
    """Whether a blob of the reports container is reconcile state (never a run's report)."""
    return name == LEGACY_BLOB or name.startswith(STATE_PREFIX)


# --- reading and repairing ------------------------------------------------------------------------------------------


def _moment(value: Any, what: str, at: datetime) -> datetime:
    if not isinstance(value, str):
        raise DamagedStateError(f"{what} is {type(value).__name__} {value!r}, not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DamagedStateError(f"{what}={value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise DamagedStateError(f"{what}={value!r} has no UTC offset")
    moment = utc(moment)
    if not at - MAX_CATCH_UP <= moment <= at + MAX_AHEAD:
        raise DamagedStateError(f"{what}={value!r} is out of range ({iso(at - MAX_CATCH_UP)} .. {iso(at + MAX_AHEAD)})")
    return moment


def _claim(raw: Any, what: str, at: datetime) -> Claim | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("run"), str) or not raw["run"]:
        raise DamagedStateError(f"{what} is not a claim {{run, through, lease_until, at}}")
    taken_from = raw.get("taken_from")
    return Claim(
        run=raw["run"],
        through=_moment(raw.get("through"), f"{what}.through", at),
        lease_until=_moment(raw.get("lease_until"), f"{what}.lease_until", at),
        at=_moment(raw.get("at"), f"{what}.at", at),
        taken_from=taken_from if isinstance(taken_from, str) and taken_from else None,
    )


def _progress(raw: Any, what: str, at: datetime) -> Progress:
    if not isinstance(raw, Mapping):
        raise DamagedStateError(f"{what} is not an object")
    failures = raw.get("failures", 0)
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        raise DamagedStateError(f"{what}.failures={failures!r} is not a count")
    last_error = raw.get("last_error")
    return Progress(
        done_through=_moment(raw.get("done_through"), f"{what}.done_through", at),
        claim=_claim(raw.get("claim"), f"{what}.claim", at),
        failures=failures,
        last_error=str(last_error)[:500] if last_error is not None else None,
    )


@dataclass
class ReadState:
    """A workspace's state as read: repaired where it was damaged (`errors` says what and where)."""

    state: WorkspaceState
    default_after: datetime  # where a schedule without progress starts
    errors: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return bool(self.errors)


def read_state(raw: bytes | None, workspace: str, at: datetime, default_after: datetime) -> ReadState:
    """The state of `raw` (None: no blob yet). Damage is repaired to `at - REPAIR_CATCH_UP`, entry by entry where
    the rest can be read, and each repair is named in `errors`."""
    repaired_from = at - REPAIR_CATCH_UP
    if raw is None:
        return ReadState(WorkspaceState(workspace), default_after)
    try:
        data = json.loads(raw)
        if not isinstance(data, Mapping) or not isinstance(data.get("schedules"), Mapping):
            raise DamagedStateError("expected an object with 'schedules'")
        if data.get("version") != VERSION:
            raise DamagedStateError(f"version {data.get('version')!r}, expected {VERSION}")
    except (ValueError, RecursionError) as err:
        what = "not JSON" if not isinstance(err, DamagedStateError) else str(err)
        return ReadState(
            WorkspaceState(workspace), repaired_from, [f"{what}; every schedule resumes from {iso(repaired_from)}"]
        )
    read = ReadState(WorkspaceState(workspace), default_after)
    for key, raw_progress in data["schedules"].items():
        try:
            read.state.schedules[str(key).lower()] = _progress(raw_progress, f"schedules[{key!r}]", at)
        except DamagedStateError as err:
            read.state.schedules[str(key).lower()] = Progress(repaired_from)
            read.errors.append(f"{err}; schedule {key!r} resumes from {iso(repaired_from)}")
    return read


def legacy_default(raw: bytes | None, at: datetime) -> tuple[datetime, str | None]:
    """Where a schedule without progress starts: the old single state's `last_evaluated` when it is there and
    sound (read once per schedule and workspace, then left alone), else one tick back; damaged, a bounded catch-up
    and the reason."""
    if raw is None:
        return at - TICK, None
    try:
        data = json.loads(raw)
        if not isinstance(data, Mapping):
            raise DamagedStateError("not an object")
        return _moment(data.get("last_evaluated"), "last_evaluated", at), None
    except (ValueError, RecursionError) as err:
        what = str(err) if isinstance(err, DamagedStateError) else "not JSON"
        repaired_from = at - REPAIR_CATCH_UP
        return repaired_from, f"{LEGACY_BLOB}: {what}; its windows start at {iso(repaired_from)}"


# --- claiming, renewing, releasing ----------------------------------------------------------------------------------


@dataclass
class Opening:
    """What a run found in one workspace: the schedules it claimed, those another run holds."""

    claimed: list[str] = field(default_factory=list)
    busy: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)  # schedules without progress here until now
    changed: bool = False


def stop_ahead(schedule: Schedule, done_through: datetime, at: datetime, notice: timedelta) -> datetime | None:
    """The stop boundary to claim ahead of time, so that its heads-up goes out `notice` before it: the schedule's
    next transition after `at` when it is a stop within (at, at + notice] and the window (done_through, at] holds
    no transition of its own (that one is acted on now; the stop is claimed by a later run). Starts are never
    claimed ahead: they are not announced and never wait."""
    if notice <= timedelta(0) or schedule.transitions(done_through, at):
        return None
    upcoming = schedule.transitions(max(done_through, at), at + notice)
    return upcoming[0].at if upcoming and upcoming[0].action == "stop" else None


def open_workspace(
    read: ReadState,
    schedules: Mapping[str, Schedule],
    *,
    run_id: str,
    at: datetime,
    dry_run: bool,
    notice: timedelta = timedelta(0),
) -> Opening:
    """Claim every schedule that needs work in (done_through, at] (a boundary in it, or enforced), or whose next
    stop boundary is within `notice` (claimed through that boundary: `stop_ahead`), and has no live claim; a dry
    run claims nothing (it acts on nothing)."""
    opening = Opening(changed=read.repaired)
    for key, schedule in sorted(schedules.items()):
        progress = read.state.schedules.get(key)
        if progress is None:
            progress = read.state.schedules[key] = Progress(read.default_after)
            opening.started.append(key)
            opening.changed = True
        claim = progress.claim
        if claim is not None and claim.run == run_id:
            opening.claimed.append(key)  # this run's own claim: the activity ran again
            continue
        live = claim is not None and claim.live(at)
        ahead = stop_ahead(schedule, progress.done_through, at, notice)
        if not (schedule.enforced or ahead or schedule.transitions(progress.done_through, at)):
            if progress.done_through < at - IDLE_ADVANCE and not live:
                progress.done_through, opening.changed = at, True  # nothing in the window: keep it short
            continue
        if live:
            assert claim is not None
            opening.busy[key] = claim.run
        elif not dry_run:
            # A claim that expired was a run that died (a host lost with it): its heads-up is carried over.
            taken_from = claim.run if claim is not None else None
            progress.claim = Claim(run_id, ahead or at, at + LEASE, at, taken_from)
            opening.claimed.append(key)
            opening.changed = True
    return opening


def renew(
    state: WorkspaceState, claims: Mapping[str, str], run_id: str, now: datetime, until: datetime | None = None
) -> tuple[bool, dict[str, str]]:
    """Extend this run's leases that are less than LEASE/2 from their end (to now + LEASE), or end before `until`
    (to `until`: a run waiting for a heads-up's due time holds its claims through the wait without waking to renew
    them); (changed, schedules lost to other runs)."""
    changed = False
    lost: dict[str, str] = {}
    for key in claims:
        progress = state.schedules.get(key)
        claim = progress.claim if progress else None
        if claim is None or claim.run != run_id:
            lost[key] = claim.run if claim else "another run"
            continue
        wanted = max(now + LEASE, until) if until is not None else now + LEASE
        if claim.lease_until - now < LEASE / 2 or (until is not None and claim.lease_until < until):
            claim.lease_until = wanted
            changed = True
    return changed, lost


def release(state: WorkspaceState, claims: Mapping[str, str], run_id: str, outcomes: Mapping[str, str | None]) -> bool:
    """End this run's claims: `outcomes[key]` None moves done_through to the claim's `through`; an error leaves it
    (the next run acts on the window again) and counts the failure. Claims another run took over are left."""
    changed = False
    for key in claims:
        progress = state.schedules.get(key)
        claim = progress.claim if progress else None
        if progress is None or claim is None or claim.run != run_id:
            continue
        error = outcomes.get(key)
        if error is None:
            progress.done_through = max(progress.done_through, claim.through)
            progress.failures, progress.last_error = 0, None
        else:
            progress.failures += 1
            progress.last_error = error[:500]
        progress.claim = None
        changed = True
    return changed


# --- the blob ---------------------------------------------------------------------------------------------------------


def update_state(
    container: str,
    workspace: str,
    at: datetime,
    default_after: datetime,
    change: Callable[[ReadState], tuple[T, bool]],
    *,
    write: bool = True,
) -> tuple[T, ReadState]:
    """Read the workspace's state, apply `change` (returns its result and whether the state changed) and write it
    back if it changed, conditionally: when another run wrote meanwhile, read again and apply again."""
    from shared import blobs
    from shared.errors import OutputChangedError

    name = state_blob(workspace)
    for _ in range(UPDATE_ATTEMPTS):
        found = blobs.read_blob_etag(container, name)
        read = read_state(found[0] if found else None, workspace, at, default_after)
        result, changed = change(read)
        if not (changed and write):
            return result, read
        try:
            blobs.upload_if(
                container,
                name,
                read.state.to_json(),
                content_type="application/json",
                if_match=found[1] if found else None,
            )
        except OutputChangedError:
            continue
        return result, read
    raise OutputChangedError(f"{container}/{name} kept changing: {UPDATE_ATTEMPTS} attempts to update it failed")


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_error_is_new(container: str, text: str, error: str, at: datetime) -> bool:
    """Whether this malformed COMPUTE_SCHEDULES is reported by this run: the first run to see a value records its
    hash; later runs with the same value stay quiet (a malformed value would otherwise be reported every minute)."""
    from shared import blobs
    from shared.errors import OutputChangedError

    digest = config_hash(text)
    found = blobs.read_blob_etag(container, CONFIG_BLOB)
    if found is not None:
        try:
            if json.loads(found[0]).get("hash") == digest:
                return False
        except (ValueError, AttributeError):
            pass
    body = json.dumps({"hash": digest, "error": error, "at": iso(at)}).encode("utf-8")
    try:
        blobs.upload_if(
            container, CONFIG_BLOB, body, content_type="application/json", if_match=found[1] if found else None
        )
    except OutputChangedError:
        return False  # another run recorded it first, and reports it
    return True


def load_state(container: str, workspace: str, at: datetime, default_after: datetime) -> ReadState:
    """The workspace's state as it is now, repaired in memory only (the run that claims writes repairs back)."""
    from shared import blobs

    found = blobs.read_blob_etag(container, state_blob(workspace))
    return read_state(found[0] if found else None, workspace, at, default_after)


def load_legacy_default(container: str, at: datetime) -> tuple[datetime, str | None]:
    from shared import blobs

    found = blobs.read_blob_etag(container, LEGACY_BLOB)
    return legacy_default(found[0] if found else None, at)
