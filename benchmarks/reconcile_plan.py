"""`python -m benchmarks.reconcile_plan`: what deciding a reconcile costs at COMPUTE_SCHEDULES' limits (issue 19):
2,000 instances following 100 schedules of 50 periods each, decided over a one-minute window. Not a case of the
harness (it takes well under a second); prints the seconds of two calls and the setting's size."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from shared.compute.arm import ComputeInstance
from shared.compute.reconcile import plan
from shared.compute.schedules import MAX_PERIODS, MAX_SCHEDULES, parse_schedules

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")


def main() -> None:
    schedules = [
        {
            "name": f"s{i:03d}",
            "timezone": ZONES[i % 3],
            "enforced": i % 10 == 0,
            "periods": [
                {"days": DAYS[p % 7], "begin": f"{p % 12 + 6:02d}:{p * 7 % 60:02d}", "end": f"{p % 5 + 18:02d}:00"}
                for p in range(MAX_PERIODS)
            ],
        }
        for i in range(MAX_SCHEDULES)
    ]
    text = json.dumps(schedules)
    parsed = parse_schedules(text)
    instances = [
        ComputeInstance(
            "sub/rg/ws", f"ci-{i}", "Running" if i % 2 else "Stopped", {"compute-schedule": f"s{i % 100:03d}"}
        )
        for i in range(2000)
    ]
    at = datetime(2026, 12, 7, 8, 0, 30, tzinfo=UTC)
    for label in ("first call", "second call"):
        started = time.perf_counter()
        planned = plan(
            instances,
            schedules=parsed,
            config_error=None,
            tag="compute-schedule",
            at=at,
            last_evaluated=at - timedelta(minutes=1),
        )
        print(f"{label}: {time.perf_counter() - started:.3f} s for {len(planned)} instances")
    print(f"COMPUTE_SCHEDULES: {len(text):,} bytes, {MAX_SCHEDULES} schedules x {MAX_PERIODS} periods")


if __name__ == "__main__":
    main()
