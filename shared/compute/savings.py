"""Savings estimates of a report: VM size x hourly price x the hours an instance stays stopped thanks to the app.

Pure (the orchestrators call it with prices fetched by an activity). Hours saved by a stop: until the schedule's
next start for an instance that follows a schedule; for an untagged one, until the next nightly
SHUTDOWN_SCHEDULE run (it would have run until then at most, and is started by a person, not by us). A start
saves nothing (it is reported with its price, 0 hours).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.compute.arm import ComputeInstance
from shared.compute.cron import next_occurrence
from shared.compute.report import InstanceResult
from shared.compute.schedules import Schedule, next_start, schedule_tag_value


def hours_saved(
    instance: ComputeInstance,
    outcome: str,
    at: datetime,
    *,
    schedules: Mapping[str, Schedule] | None,
    tag: str,
    shutdown_schedule: str,
) -> float:
    if outcome != "stopped":
        return 0.0
    name = schedule_tag_value(instance.tags, tag)
    schedule = (schedules or {}).get(name.lower()) if name else None
    until = _next_start(schedule, at) if schedule is not None else _next_run(shutdown_schedule, at)
    return 0.0 if until is None else round(max(0.0, (until - at).total_seconds() / 3600.0), 2)


# A run prices thousands of stops at one instant against a few schedules: each answer is computed once.
_next_start = functools.lru_cache(maxsize=4096)(next_start)
_next_run = functools.lru_cache(maxsize=4096)(next_occurrence)


def priced_sizes(results: Iterable[InstanceResult], instances: Mapping[tuple[str, str], ComputeInstance]) -> list[str]:
    """The VM sizes to price: those of instances stopped or started."""
    sizes = set()
    for r in results:
        instance = instances.get((r.workspace, r.name))
        if r.outcome in ("stopped", "started") and instance is not None and instance.size:
            sizes.add(instance.size)
    return sorted(sizes)


def with_savings(
    results: Iterable[InstanceResult],
    instances: Mapping[tuple[str, str], ComputeInstance],
    prices: Mapping[str, Any],
    at: datetime,
    *,
    schedules: Mapping[str, Schedule] | None,
    tag: str,
    shutdown_schedule: str,
    acted_at: Mapping[tuple[str, str], datetime] | None = None,
) -> list[InstanceResult]:
    """Each stopped/started result with vm_size, hourly_price, currency, price_source, hours and savings; hours count
    from when the instance was acted on (`acted_at`: a stop that waited for its heads-up), else from `at`."""
    out = []
    for r in results:
        instance = instances.get((r.workspace, r.name))
        if r.outcome not in ("stopped", "started") or instance is None:
            out.append(r)
            continue
        since = (acted_at or {}).get((r.workspace, r.name), at)
        hours = hours_saved(
            instance, r.outcome, since, schedules=schedules, tag=tag, shutdown_schedule=shutdown_schedule
        )
        price = prices.get(instance.size or "")
        if not isinstance(price, Mapping):
            why = price if isinstance(price, str) else "no price was read" if instance.size else "VM size unknown"
            out.append(
                replace(r, vm_size=instance.size, estimated_hours_saved=hours, reason=f"{r.reason}; no price: {why}")
            )
            continue
        hourly = float(price["hourly_price"])
        out.append(
            replace(
                r,
                vm_size=instance.size,
                hourly_price=hourly,
                currency=str(price["currency"]),
                price_source=str(price["price_source"]),
                estimated_hours_saved=hours,
                estimated_savings=round(hourly * hours, 2),
            )
        )
    return out
