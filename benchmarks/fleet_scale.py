"""`fleet_scale`: one `POST /api/shutdown` over 10,000 compute instances in 10 subscriptions x 2 workspaces, ARM's
request buckets enforced by the stand-in, every stop taking 2 s; then one `POST /api/reconcile` over the same
10,000 instances tagged with a schedule whose stop boundary is in the window (issue 20); then the shutdown again with
the heads-up (issue 23): a webhook channel (the notification sink, in this process), a short `notice_minutes`, 100
owners, and owners clicking "stop now" on some links while the run waits.

Measured per run: wall time against the slowest subscription's write floor ((1,000 - 200) / 10 + 2 = 82 s), ARM
writes per instance and the reads beyond list pages (from the stand-in's own log), the largest orchestration
history and the largest single Durable message among all orchestrations of the run (the Durable HTTP API with
`showHistory=true&showHistoryOutput=true`), the size of the status output, and the worker processes' peak memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from benchmarks.core import Goal, Result
from benchmarks.hosts import Context, app_functions, devhost, peak_rss_mib, reset_peak, reset_write_buckets
from devhost.standins.arm import ArmStandin, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.notify import NotifySink
from devhost.standins.prices import PricesStandin
from devhost.standins.tls import make_local_tls
from tests.devhost_runner import TERMINAL, RunningHost
from tests.helpers.processes import worker_pids

log = logging.getLogger(__name__)

SUBSCRIPTIONS, WORKSPACES_PER_SUBSCRIPTION, PER_WORKSPACE = 10, 2, 500
QUICK = (2, 2, 100)
TRANSITION_SECONDS = 2.0
PAGE_SIZE = 100  # instances per list page (the stand-in's default, 3, would make 167 pages of one workspace)
WRITE_BURST, WRITE_REFILL = 200, 10.0
FLOOR_FACTOR = 1.2
# One POST per instance; a rare 429 (ARM's clock against ours) costs one more: at most 1 in 1,000.
WRITES_GOAL = "1.0 ARM writes per instance (at most 1 in 1,000 sent again after a 429)"
HISTORY_LIMIT_KB, MESSAGE_LIMIT_KB = 1024, 256
OWNERS = 100  # owner tags spread over the fleet: one heads-up message each
NOTICE_MINUTES = 0.5  # the heads-up run's lead time
CLICKS_PER_WORKSPACE = 5  # "stop now" clicks on links while the heads-up run waits (events on its workspaces)
DURABLE = "/runtime/webhooks/durabletask"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def subscription_id(s: int) -> str:
    return f"00000000-0000-0000-0000-{s:012d}"


def fleet(subscriptions: int, per_subscription: int, per_workspace: int, schedule: str | None) -> dict[str, Any]:
    """`subscriptions` x `per_subscription` workspaces of `per_workspace` Running instances (tagged or not)."""
    tags = {"compute-schedule": schedule} if schedule else {"team": "bench"}
    return {
        "location": "westeurope",
        "workspaces": [
            {
                "subscription": subscription_id(s),
                "resource_group": "rg-fleet",
                "name": f"ws-{s:02d}-{w}",
                "computes": [
                    {
                        "name": f"ci-{s:02d}-{w}-{i:04d}",
                        "tags": {**tags, "owner": f"user-{i % OWNERS:03d}"},
                        "properties": {
                            "computeType": "ComputeInstance",
                            "properties": {"state": "Running", "vmSize": "STANDARD_DS3_V2"},
                        },
                    }
                    for i in range(per_workspace)
                ],
            }
            for s in range(subscriptions)
            for w in range(per_subscription)
        ],
    }


def closed_schedule(now: datetime) -> list[dict[str, Any]]:
    """A schedule whose period ended 5 minutes ago (Europe/Berlin): a stop boundary for the reconciler."""
    begin = (now - timedelta(minutes=65)).astimezone(ZoneInfo("Europe/Berlin")).replace(second=0, microsecond=0)
    end = begin + timedelta(minutes=60)
    period = {"days": DAYS[begin.weekday()], "begin": f"{begin:%H:%M}", "end": f"{end:%H:%M}"}
    return [{"name": "closed", "timezone": "Europe/Berlin", "periods": [period]}]


def follow(host: RunningHost, url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        while time.monotonic() < deadline:
            answer = session.get(url, timeout=30)
            status: dict[str, Any] = answer.json()
            if answer.status_code == 200 and status.get("runtimeStatus") in TERMINAL:
                return status
            time.sleep(0.25)
    raise RuntimeError(f"the run did not finish within {timeout:.0f} s")


def sizes(host: RunningHost, run_id: str) -> dict[str, Any]:
    """The largest history and the largest single message among the run's orchestrations (JSON bytes)."""
    listed = host.request("GET", f"{DURABLE}/instances?instanceIdPrefix={run_id}", timeout=60).json()
    largest_history, largest_message, where = 0, 0, ""
    for item in listed:
        status = host.request(
            "GET",
            f"{DURABLE}/instances/{item['instanceId']}?showHistory=true&showHistoryOutput=true",
            timeout=60,
        ).json()
        events = status.get("historyEvents") or []
        largest_history = max(largest_history, len(json.dumps(events).encode()))
        payloads = [e.get(k) for e in events for k in ("Input", "Result") if k in e]
        payloads += [status.get("output"), status.get("customStatus")]
        for payload in payloads:
            size = len(json.dumps(payload).encode())
            if size > largest_message:
                largest_message, where = size, item["instanceId"]
    return {
        "orchestrations": len(listed),
        "largest_history_bytes": largest_history,
        "largest_message_bytes": largest_message,
        "largest_message_in": where,
    }


def one_run(
    host: RunningHost,
    arm: ArmStandin,
    route: str,
    expected: int,
    timeout: float,
    body: dict[str, Any] | None = None,
    sink: NotifySink | None = None,
) -> dict[str, Any]:
    subscriptions = sorted({key.split("/", 1)[0] for key in host.settings["AML_WORKSPACES"].split(",")})
    reset_write_buckets(host, subscriptions, limited=True)  # full, like the stand-in's after its reload
    pids = worker_pids(host)
    for pid in pids:
        reset_peak(pid)
    started = time.perf_counter()
    answer = host.request("POST", route, json=body or {})
    if answer.status_code != 202:
        raise RuntimeError(f"POST {route} answered {answer.status_code}: {answer.text[:500]}")
    notices = _click_stop_now(sink, expected, started) if sink is not None else {}
    status = follow(host, answer.json()["statusQueryGetUri"], timeout)
    wall = time.perf_counter() - started
    if status.get("runtimeStatus") != "Completed":
        raise RuntimeError(f"{route} ended {status.get('runtimeStatus')}: {str(status.get('output'))[:1000]}")
    output = status["output"]
    stopped = sum(1 for state in arm.states().values() if state in ("Stopped", "Stopping"))
    posts = arm.requests("POST")
    gets = arm.requests("GET")
    info = {
        "wall_seconds": wall,
        "totals": output["totals"],
        "arm_requests_reported": output["arm_requests"],
        "stopped_in_standin": stopped,
        "writes": len(posts),
        "throttled": sum(1 for r in arm.requests() if r.status == 429),
        "list_pages": sum(1 for r in gets if r.path.rstrip("/").endswith("/computes")),
        "other_reads": sum(1 for r in gets if not r.path.rstrip("/").endswith("/computes")),
        "output_bytes": len(json.dumps(output).encode()),
        "worker_peak_mib": max((peak_rss_mib(pid) or 0.0) for pid in pids) if pids else None,
        "heads_up": output.get("heads_up"),
        **notices,
        **sizes(host, status["instanceId"]),
    }
    if output["totals"]["stopped"] != expected or stopped != expected:
        raise RuntimeError(f"expected {expected} stopped; report {output['totals']}, stand-in {stopped}")
    log.info("%s: %s", route, {k: v for k, v in info.items() if k != "totals"})
    return info


def _click_stop_now(sink: NotifySink, expected: int, started: float) -> dict[str, Any]:
    """Wait for the heads-up of all `expected` stops (as the owners get it), then click "stop now" on a few links per
    workspace, as owners would while the run waits: each click is one event on that workspace's orchestration."""
    deadline = time.monotonic() + 120
    links: dict[str, str] = {}
    while len(links) < expected and time.monotonic() < deadline:
        links = {n["instance"]: n["links"]["review"] for m in sink.received("webhook") for n in m.body["notices"]}
        time.sleep(0.2)
    if len(links) < expected:
        raise RuntimeError(f"the heads-up announced {len(links)} of {expected} stops")
    delivered = time.perf_counter() - started
    chosen = sorted(links)[:: max(1, PER_WORKSPACE // CLICKS_PER_WORKSPACE)]  # spread over the workspaces
    with requests.Session() as session:
        for name in chosen:
            answer = session.post(links[name], data={"action": "stop-now"}, timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"stop-now on {name} answered {answer.status_code}: {answer.text[:300]}")
    return {
        "notices_delivered_seconds": delivered,
        "messages": len(sink.received("webhook")),
        "clicks": len(chosen),
    }


def run(ctx: Context) -> Result:
    subs, per_sub, per_ws = QUICK if ctx.quick else (SUBSCRIPTIONS, WORKSPACES_PER_SUBSCRIPTION, PER_WORKSPACE)
    size = subs * per_sub * per_ws
    per_subscription = per_sub * per_ws
    floor = max(0, per_subscription - WRITE_BURST) / WRITE_REFILL + TRANSITION_SECONDS
    result = Result(
        "fleet_scale",
        "Fleet scale: one run over 10,000 instances",
        f"`POST /api/shutdown`, then `POST /api/reconcile`, on devhost over {size:,} Running compute instances in "
        f"{subs} subscriptions x {per_sub} workspaces of the HTTPS ARM stand-in with ARM's request buckets enforced "
        f"per subscription (writes 200 then 10/s, reads 250 then 25/s, 429 + Retry-After beyond), list pages of "
        f"{PAGE_SIZE}, every stop taking {TRANSITION_SECONDS:g} s; followed to Completed (every 250 ms). Each run "
        "checks the report's totals and the stand-in's states. The floor is the slowest subscription's write "
        f"bucket: ({per_subscription:,} - 200) / 10 + 2 = {floor:g} s. ARM requests from the stand-in's log; "
        "orchestration sizes from the Durable HTTP API (`showHistory=true&showHistoryOutput=true`) over every "
        "orchestration of the run (the top, one per subscription and phase, one per workspace); worker memory is "
        "each worker process's VmHWM during the run. The reconcile's instances are tagged with a schedule whose "
        "period ended 5 minutes before. The third run is the shutdown again with the heads-up: `notice_minutes` "
        f"{NOTICE_MINUTES:g} in its body, one webhook channel (the notification sink, on loopback), {OWNERS} owners "
        f'(the `owner` tag), and {CLICKS_PER_WORKSPACE} "stop now" clicks per workspace on the links while it waits; '
        "its floor is the heads-up plus the write floor.",
        parameters={
            "instances": size,
            "subscriptions": subs,
            "workspaces per subscription": per_sub,
            "list page size": PAGE_SIZE,
            "stop transition (s)": TRANSITION_SECONDS,
            "SHUTDOWN_POLL_SECONDS": 1,
            "worker processes": os.cpu_count(),
            "heads-up run: notice_minutes": NOTICE_MINUTES,
            "heads-up run: owners": OWNERS,
        },
    )
    if "start_shutdown" not in app_functions():
        result.notes.append("`start_shutdown` is not registered by function_app: nothing was measured.")
        return result
    runs = _measure(ctx, result, subs, per_sub, per_ws)
    summarize(result, runs, size, floor)
    return result


def _measure(ctx: Context, result: Result, subs: int, per_sub: int, per_ws: int) -> dict[str, dict[str, Any]]:
    tls = make_local_tls(ctx.scratch("tls"))
    untagged = fleet(subs, per_sub, per_ws, None)
    tagged = fleet(subs, per_sub, per_ws, "closed")
    size = subs * per_sub * per_ws
    with IdentityStandin() as identity, PricesStandin() as prices, NotifySink() as sink:
        arm = ArmStandin(
            untagged,
            tls,
            transition_seconds=TRANSITION_SECONDS,
            page_size=PAGE_SIZE,
            token_validator=identity.is_valid,
            throttle="arm",
        )
        endpoint = arm.start() + "/"
        settings = {
            "PRICES_ENDPOINT": prices.url,
            "AML_WORKSPACES": ",".join(workspace_keys(untagged)),
            "AML_ARM_ENDPOINT": endpoint,
            **identity.env(),
            "REQUESTS_CA_BUNDLE": str(tls.ca_bundle),
            "SHUTDOWN_POLL_SECONDS": "1",
            "AML_POLLING_INTERVAL_SECONDS": "1",
            "RECONCILE_TIMER": "false",
            "COMPUTE_SCHEDULES": json.dumps(closed_schedule(datetime.now(UTC))),
            # The heads-up is asked for by the third run's body alone (the first two run as without it).
            "NOTIFY_CHANNELS": json.dumps([{"name": "bench-hook", "kind": "webhook", "url": f"{sink.url}/hook"}]),
            "NOTICE_MINUTES": "0",
        }
        try:
            with devhost(ctx, "fleet", settings) as host:
                warm = time.perf_counter()  # not measured: workers import azure.ai.ml and build their clients
                _warm_up(host)
                result.notes.append(f"Warm-up (a dry run, not measured): {time.perf_counter() - warm:.1f} s.")
                runs: dict[str, dict[str, Any]] = {}
                arm.reload(untagged)
                runs["shutdown"] = one_run(host, arm, "/api/shutdown", size, timeout=900)
                time.sleep(WRITE_BURST / WRITE_REFILL)  # ARM's write buckets refill (the stand-in's reload is instant)
                arm.reload(tagged)
                _old_window(host, datetime.now(UTC) - timedelta(hours=1))
                runs["reconcile"] = one_run(host, arm, "/api/reconcile", size, timeout=900)
                time.sleep(WRITE_BURST / WRITE_REFILL)
                arm.reload(untagged)
                body = {"notice_minutes": NOTICE_MINUTES}
                runs["shutdown_notice"] = one_run(host, arm, "/api/shutdown", size, 900, body=body, sink=sink)
                return runs
        finally:
            arm.stop()


def _warm_up(host: RunningHost) -> None:
    answer = host.request("POST", "/api/shutdown", json={"dry_run": True})
    follow(host, answer.json()["statusQueryGetUri"], timeout=300)


def _old_window(host: RunningHost, moment: datetime) -> None:
    """Where the reconciler's windows start: an hour back, so the schedule's stop boundary is in them."""
    from tests.helpers.storage import blob_service, ensure_container

    container = ensure_container(blob_service(host), "reports")
    container.upload_blob("reconcile/state.json", json.dumps({"last_evaluated": moment.isoformat()}), overwrite=True)


def summarize(result: Result, runs: dict[str, dict[str, Any]], size: int, floor: float) -> None:
    result.raw = {"runs": runs}
    result.measure(
        "floor", f"slowest subscription's write floor ({size:,} instances)", "s", baseline_only=True
    ).samples = [floor]
    if "shutdown_notice" in runs:  # its stops wait for their heads-up first, then ARM's buckets pace them
        result.measure(
            "notice_floor", f"the heads-up ({NOTICE_MINUTES:g} min) + the write floor", "s", baseline_only=True
        ).samples = [floor + NOTICE_MINUTES * 60]
    for kind, info in runs.items():
        against = "notice_floor" if kind == "shutdown_notice" else "floor"
        result.measure(f"wall_{kind}", f"{kind}: POST -> Completed", "s", against).samples = [info["wall_seconds"]]
        result.measure(f"writes_{kind}", f"{kind}: ARM writes per instance (stand-in)", "req").samples = [
            info["writes"] / size
        ]
        result.measure(f"other_reads_{kind}", f"{kind}: ARM reads other than list pages", "req").samples = [
            info["other_reads"]
        ]
        result.measure(f"pages_{kind}", f"{kind}: list pages read", "req").samples = [info["list_pages"]]
        result.measure(f"history_{kind}", f"{kind}: largest orchestration history", "KiB").samples = [
            info["largest_history_bytes"] / 1024
        ]
        result.measure(f"message_{kind}", f"{kind}: largest single Durable message", "KiB").samples = [
            info["largest_message_bytes"] / 1024
        ]
        result.measure(f"output_{kind}", f"{kind}: status output", "KiB").samples = [info["output_bytes"] / 1024]
        if info.get("worker_peak_mib") is not None:
            result.measure(f"memory_{kind}", f"{kind}: worker peak memory", "MiB").samples = [info["worker_peak_mib"]]
        result.notes.append(
            f"{kind}: {info['orchestrations']} orchestrations; {info['writes']:,} writes, {info['throttled']} "
            f"answered 429; {info['list_pages']:,} list pages; largest message in `{info['largest_message_in']}`."
        )
        heads_up = info.get("heads_up")
        if heads_up:
            result.notes.append(
                f"{kind}: heads-up {heads_up['minutes']:g} min ahead, {heads_up['messages_sent']} messages to "
                f"{heads_up['owners']} owners ({heads_up['messages_failed']} failed), all delivered "
                f'{info["notices_delivered_seconds"]:.1f} s after the POST; {info["clicks"]} "stop now" clicks '
                "while the run waited (one event each on its workspace's orchestration)."
            )
    result.goals = [
        *_run_goals("shutdown", "shutdown", f"the floor ({floor:g} s)", floor),
        *_run_goals("reconcile", "reconcile", f"the floor ({floor:g} s)", floor, list_pages_goal=False),
    ]
    if "shutdown_notice" in runs:
        notice_floor = floor + NOTICE_MINUTES * 60
        floor_text = f"(the heads-up + the floor) ({notice_floor:g} s)"
        result.goals += _run_goals("shutdown_notice", "shutdown with the heads-up", floor_text, notice_floor)


def _run_goals(kind: str, label: str, floor_text: str, floor: float, list_pages_goal: bool = True) -> list[Goal]:
    """One run's goals: its wall time against its floor, one write per instance, (list pages only,) and the sizes."""
    goals = [
        Goal(f"{label} within {FLOOR_FACTOR:g} x {floor_text}", f"wall_{kind}", "<=", FLOOR_FACTOR * floor),
        Goal(f"{WRITES_GOAL} ({label})", f"writes_{kind}", "<=", 1.001),
    ]
    if list_pages_goal:
        goals.append(Goal(f"no ARM read but list pages ({label})", f"other_reads_{kind}", "<=", 0))
    return [
        *goals,
        Goal(
            f"no orchestration history above {HISTORY_LIMIT_KB} KiB ({label})", f"history_{kind}", "<", HISTORY_LIMIT_KB
        ),
        Goal(f"no Durable message above {MESSAGE_LIMIT_KB} KiB ({label})", f"message_{kind}", "<", MESSAGE_LIMIT_KB),
    ]
