"""What the schedules endpoints show: each schedule with its next transitions and followers, and a preview.

Reads only: the instances are listed (one ARM request per page per workspace), nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.compute import ComputeInstance
from shared.reconcile import TICK, load_schedules, plan, utc
from shared.schedules import describe, schedule_tag_value, sorted_schedules
from shared.settings import AML_WORKSPACES, COMPUTE_SCHEDULES, SCHEDULE_TAG, Workspace


def _list_all(
    workspaces: tuple[Workspace, ...], env: Mapping[str, str] | None
) -> tuple[list[ComputeInstance], list[dict[str, str]]]:
    from shared import compute
    from shared.errors import ComputeError

    def one(ws: Workspace) -> list[ComputeInstance] | str:
        try:
            return compute.list_instances(ws, env)
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


def schedules_overview(now: datetime, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GET /api/schedules."""
    schedules, error = load_schedules(COMPUTE_SCHEDULES.get(env))
    tag = SCHEDULE_TAG.get(env)
    instances, errors = _list_all(AML_WORKSPACES.get(env), env)
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
