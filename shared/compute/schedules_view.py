"""What the schedules endpoints show: each schedule with its next transitions and followers, and a preview.

Reads only: the instances are listed (one ARM request per page per workspace), nothing is changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.compute.arm import ComputeInstance
from shared.compute.reconcile import TICK, load_schedules, plan, utc
from shared.compute.schedules import describe, schedule_tag_value, sorted_schedules
from shared.settings import AML_WORKSPACES, COMPUTE_SCHEDULES, SCHEDULE_TAG, Workspace


def _list_all(
    workspaces: tuple[Workspace, ...], env: Mapping[str, str] | None
) -> tuple[list[ComputeInstance], list[dict[str, str]]]:
    from shared.compute import arm
    from shared.errors import ComputeError

    def one(ws: Workspace) -> list[ComputeInstance] | str:
        try:
            return arm.list_instances(ws, env)
        except ComputeError as err:
            return str(err)

    instances: list[ComputeInstance] = []
    errors: list[dict[str, str]] = []
    with ThreadPoolExecutor(max(1, min(8, len(workspaces)))) as pool:
        for ws, listed in zip(workspaces, pool.map(one, workspaces), strict=True):
            if isinstance(listed, str):
                errors.append({"workspace": ws.key, "error": listed})
            else:
                instances.extend(listed)
    return instances, errors


Listing = tuple[list[ComputeInstance], list[dict[str, str]]]
_listings: dict[tuple[Workspace, ...], tuple[float, Listing]] = {}
_listings_lock = threading.Lock()


def _list_recent(workspaces: tuple[Workspace, ...], env: Mapping[str, str] | None, max_age: float) -> Listing:
    """`_list_all`, reusing this process's listing of the same workspaces when it is under `max_age` seconds old.

    A page that reloads itself (the dashboard refreshes every 10 s while a run goes on) would otherwise cost one
    ARM read per workspace per view; ARM counts reads against the subscription's budget.
    """
    if max_age <= 0:
        return _list_all(workspaces, env)
    now = time.monotonic()
    with _listings_lock:
        cached = _listings.get(workspaces)
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    listing = _list_all(workspaces, env)
    with _listings_lock:
        _listings[workspaces] = (now, listing)
    return listing


def schedules_overview(
    now: datetime, env: Mapping[str, str] | None = None, listing_max_age: float = 0
) -> dict[str, Any]:
    """GET /api/schedules (a fresh listing); the dashboard passes `listing_max_age` to reuse a recent one."""
    schedules, error = load_schedules(COMPUTE_SCHEDULES.get(env))
    tag = SCHEDULE_TAG.get(env)
    instances, errors = _list_recent(AML_WORKSPACES.get(env), env, listing_max_age)
    followers: dict[str, list[dict[str, str]]] = {}
    for instance in instances:
        name = schedule_tag_value(instance.tags, tag)
        if name is not None:
            followers.setdefault(name.lower(), []).append(
                {"workspace": instance.workspace, "name": instance.name, "state": instance.state}
            )
    known = sorted_schedules(schedules or {})
    out = describe(known, utc(now))
    for entry in out:
        entry["instances"] = followers.pop(entry["name"].lower(), [])
    unknown = [{**f, "schedule": name} for name, fs in sorted(followers.items()) for f in fs]
    return {
        "schedule_tag": tag,
        "error": error,
        "schedules": out,
        "instances_with_unknown_schedule": unknown,
        "listing_errors": errors,
    }


def dashboard_rows(overview: Mapping[str, Any], unknown_policy: str = "nightly") -> list[dict[str, Any]]:
    """The overview as the dashboard's rows: `{"name", "timezone", "next_transitions", "instances", "error"?}`.

    A malformed COMPUTE_SCHEDULES, a workspace that could not be listed and instances tagged with a schedule that
    does not exist show as rows with an error, so the page says why a schedule or an instance is missing.
    """
    rows: list[dict[str, Any]] = []
    if overview.get("error"):
        rows.append(
            {
                "name": "COMPUTE_SCHEDULES",
                "timezone": "",
                "next_transitions": [],
                "instances": [],
                "error": overview["error"],
            }
        )
    listing = "; ".join(f"{e['workspace']}: {e['error']}" for e in overview.get("listing_errors") or [])
    for schedule in overview.get("schedules") or []:
        row = {key: schedule.get(key) for key in ("name", "timezone", "next_transitions", "instances")}
        if listing:
            row["error"] = f"instances not listed ({listing})"
        rows.append(row)
    unknown: dict[str, list[dict[str, str]]] = {}
    for follower in overview.get("instances_with_unknown_schedule") or []:
        unknown.setdefault(follower["schedule"], []).append(follower)
    tag = overview.get("schedule_tag")
    for name, followers in sorted(unknown.items()):
        rows.append(
            {
                "name": name,
                "timezone": "",
                "next_transitions": [],
                "instances": followers,
                "error": f"no schedule named {name!r} in COMPUTE_SCHEDULES (tag {tag}={name}): "
                + (
                    "the nightly shutdown policy applies to it"
                    if unknown_policy == "nightly"
                    else "nothing stops it (UNKNOWN_SCHEDULE_POLICY=skip)"
                ),
            }
        )
    return rows


def preview(at: datetime, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """POST /api/schedules/preview: what a reconcile at `at` (a regular one-minute tick) would do."""
    schedules, error = load_schedules(COMPUTE_SCHEDULES.get(env))
    instances, errors = _list_all(AML_WORKSPACES.get(env), env)
    planned = plan(
        instances, schedules=schedules, config_error=error, tag=SCHEDULE_TAG.get(env), at=at, last_evaluated=at - TICK
    )
    return {
        "at": utc(at).isoformat().replace("+00:00", "Z"),
        "error": error,
        "instances": [
            {
                "workspace": p.instance.workspace,
                "name": p.instance.name,
                "state": p.instance.state,
                **p.decision.to_dict(),
            }
            for p in planned
        ],
        "listing_errors": errors,
    }
