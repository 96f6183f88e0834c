"""`eventgrid_latency` and `weight_latency`: request latency through devhost, each against a trivial endpoint
of the same host measured in the same run (the host's own overhead)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from benchmarks.core import Goal, Result, percentile
from benchmarks.hosts import Context, app_functions, devhost
from tests.devhost_runner import RunningHost
from tests.helpers.events import account_url as host_account_url
from tests.helpers.events import blob_created_event, blob_event, webhook_path
from tests.helpers.storage import blob_service, ensure_container

log = logging.getLogger(__name__)

WARMUP = 30
TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/"
    "providers/Microsoft.Storage/storageAccounts/devstoreaccount1"
)
Send = Callable[[int], requests.Response]


def timed_requests(count: int, send: Send) -> tuple[list[float], int]:
    """Latencies in ms of `count` sequential requests, and how many answered outside 200..299."""
    latencies: list[float] = []
    failures = 0
    for i in range(count):
        started = time.perf_counter()
        response = send(i)
        latencies.append((time.perf_counter() - started) * 1000)
        if not 200 <= response.status_code < 300:
            failures += 1
            if failures <= 3:
                log.warning("request %d answered %d: %s", i, response.status_code, response.text[:300])
    return latencies, failures


def record(result: Result, key: str, label: str, latencies: list[float], baseline: str | None = None) -> None:
    """Median and p99 of one repetition, appended to the `key` measures; raw latencies kept (µs precision)."""
    only = baseline is None
    result.measure(f"{key}_median", f"{label}, median", "ms", baseline and f"{baseline}_median", only).samples.append(
        percentile(latencies, 50)
    )
    result.measure(f"{key}_p99", f"{label}, p99", "ms", baseline and f"{baseline}_p99", only).samples.append(
        percentile(latencies, 99)
    )
    result.raw.setdefault(f"{key}_ms", []).append([round(v, 3) for v in latencies])


def status_sender(host: RunningHost, session: requests.Session) -> Send:
    url = f"{host.base_url}/admin/host/status"
    headers = {"x-functions-key": host.key}
    return lambda _: session.get(url, headers=headers, timeout=30)


# --- Event Grid ---------------------------------------------------------------------------------------------


def ignored_event(i: int, account_url: str) -> dict[str, Any]:
    """Alternately a non-.csv blob in the input container and a .csv blob in a container the app ignores."""
    if i % 2:
        return blob_created_event(account_url, "incoming", f"bench/notes-{i}.txt", f"0x8D{i:013X}", 1024, topic=TOPIC)
    return blob_created_event(account_url, "archive", f"bench/data-{i}.csv", f"0x8D{i:013X}", 1024, topic=TOPIC)


def eventgrid_sender(host: RunningHost, session: requests.Session, events: list[dict[str, Any]]) -> Send:
    url = f"{host.base_url}{webhook_path()}&code={host.key}"
    headers = {"aeg-event-type": "Notification", "Content-Type": "application/json"}
    bodies = [json.dumps([e]).encode() for e in events]
    return lambda i: session.post(url, data=bodies[i], headers=headers, timeout=30)


def upload_tiny_csvs(host: RunningHost, count: int, tag: str) -> list[dict[str, Any]]:
    """`count` small CSVs in `incoming`, and a BlobCreated event for each (what Event Grid would send)."""
    container = ensure_container(blob_service(host), "incoming")
    body = b"id,height,name\n" + b"".join(f"{i},{140 + i % 50}.5,Person {i}\n".encode() for i in range(20))
    events = []
    for i in range(count):
        name = f"bench-start/{tag}/{i:04d}.csv"
        info = container.get_blob_client(name).upload_blob(body, overwrite=True)
        events.append(blob_event(host, name, str(info["etag"]).strip('"'), len(body), topic=TOPIC))
    return events


def wait_for_predictions(host: RunningHost, prefix: str, expected: int, timeout: float) -> tuple[int, float]:
    """How many predictions blobs under `prefix` exist by the deadline, and how long it took."""
    container = blob_service(host).get_container_client("predictions")
    started = time.monotonic()
    found = 0
    while time.monotonic() - started < timeout:
        try:
            found = sum(1 for _ in container.list_blobs(name_starts_with=prefix))
        except Exception:  # the container appears with the first commit
            found = 0
        if found >= expected:
            break
        time.sleep(0.5)
    return found, time.monotonic() - started


def run_eventgrid(ctx: Context) -> Result:
    repeats = 2 if ctx.quick else 3
    ignored_count = 200 if ctx.quick else 1000
    start_count = 50 if ctx.quick else 200
    result = Result(
        "eventgrid_latency",
        "Event Grid webhook latency",
        "Sequential deliveries (one keep-alive connection, one event per delivery, Event Grid schema, "
        "`aeg-event-type: Notification`) to `POST /runtime/webhooks/eventgrid?functionName=on_blob_created` on "
        "devhost, from send to answer. The *ignored* path gets BlobCreated events the app acknowledges and "
        "ignores (a `.txt` blob in `incoming`, a `.csv` in another container); the *start* path gets events for "
        "tiny CSVs uploaded beforehand, so each delivery starts a scoring orchestration. Baseline: as many "
        "`GET /admin/host/status` requests to the same host in the same repetition (the host's HTTP floor).",
        parameters={
            "repetitions": repeats,
            "ignored deliveries per repetition": ignored_count,
            "start deliveries per repetition": start_count,
            "warm-up requests (not measured)": WARMUP,
            "client": "requests.Session, sequential",
        },
    )
    functions = app_functions()
    has_trigger = "on_blob_created" in functions
    if not has_trigger:
        result.notes.append("`on_blob_created` is not registered by function_app yet: only the baseline was measured.")
    with devhost(ctx, "eventgrid", {}) as host, requests.Session() as session:
        account_url = host_account_url(host)
        status = status_sender(host, session)
        timed_requests(WARMUP, status)
        if has_trigger:
            timed_requests(
                WARMUP, eventgrid_sender(host, session, [ignored_event(i, account_url) for i in range(WARMUP)])
            )
        started_runs = 0
        for rep in range(repeats):
            latencies, _ = timed_requests(ignored_count, status)
            record(result, "status", "`GET /admin/host/status`", latencies)
            if not has_trigger:
                continue
            events = [ignored_event(i, account_url) for i in range(ignored_count)]
            latencies, failures = timed_requests(ignored_count, eventgrid_sender(host, session, events))
            record(result, "ignored", "BlobCreated, ignored", latencies, baseline="status")
            if failures:
                result.notes.append(
                    f"Repetition {rep + 1}: {failures} ignored deliveries were not acknowledged (non-2xx)."
                )
            log.info("repetition %d: ignored p99 %.1f ms", rep + 1, percentile(latencies, 99))

            start_events = upload_tiny_csvs(host, start_count, f"r{rep}")
            latencies, failures = timed_requests(start_count, eventgrid_sender(host, session, start_events))
            record(result, "start", "BlobCreated, starts an orchestration", latencies, baseline="status")
            if failures:
                result.notes.append(
                    f"Repetition {rep + 1}: {failures} start deliveries were not acknowledged (non-2xx)."
                )
            log.info("repetition %d: start p99 %.1f ms", rep + 1, percentile(latencies, 99))
            # Let the started runs finish, so they do not load the next repetition's measurements.
            done, waited = wait_for_predictions(host, f"bench-start/r{rep}/", start_count, 60 if ctx.quick else 180)
            started_runs += done
            log.info("repetition %d: %d/%d scoring runs committed within %.0f s", rep + 1, done, start_count, waited)
        if has_trigger:
            result.notes.append(
                f"Of the {start_count * repeats} orchestrations started by the *start* deliveries, {started_runs} had "
                "committed their predictions before the next repetition (checked in the `predictions` container)."
            )
    # Median and p99 rows of the baseline are shown beside each path; order rows by path.
    result.measures.sort(key=lambda m: (m.baseline_only, m.key))
    result.goals = [
        Goal("p99 of ignored BlobCreated deliveries under 50 ms", "ignored_p99", "<", 50.0),
        Goal("p99 of orchestration-starting BlobCreated deliveries under 50 ms", "start_p99", "<", 50.0),
    ]
    return result


# --- /api/weight --------------------------------------------------------------------------------------------


def run_weight(ctx: Context) -> Result:
    repeats = 2 if ctx.quick else 3
    count = 200 if ctx.quick else 1000
    result = Result(
        "weight_latency",
        "Real-time scoring latency (`GET /api/weight`)",
        "Sequential `GET /api/weight?height=138` (function key, one keep-alive connection) on devhost, from send "
        "to answer, after a warm-up that loads the model. Baseline: as many `GET /api/health` (anonymous, "
        "trivial function) in the same repetition: the cost of any HTTP function on this host.",
        parameters={
            "repetitions": repeats,
            "requests per repetition": count,
            "warm-up requests (not measured)": WARMUP,
            "client": "requests.Session, sequential",
        },
    )
    with devhost(ctx, "weight", {}) as host, requests.Session() as session:
        weight_url = f"{host.base_url}/api/weight?height=138"
        health_url = f"{host.base_url}/api/health"
        headers = {"x-functions-key": host.key}

        def weight(_: int) -> requests.Response:
            return session.get(weight_url, headers=headers, timeout=30)

        def health(_: int) -> requests.Response:
            return session.get(health_url, timeout=30)

        first = time.perf_counter()
        answer = weight(0)
        first_ms = (time.perf_counter() - first) * 1000
        if answer.status_code != 200 or "response" not in answer.json():
            raise RuntimeError(f"/api/weight answered {answer.status_code}: {answer.text[:300]}")
        result.notes.append(
            f"First `/api/weight` request (loads the model in the host): {first_ms:.0f} ms; answer {answer.text}."
        )
        timed_requests(WARMUP, weight)
        timed_requests(WARMUP, health)
        for rep in range(repeats):
            latencies, failures = timed_requests(count, health)
            record(result, "health", "`GET /api/health`", latencies)
            latencies, failures = timed_requests(count, weight)
            record(result, "weight", "`GET /api/weight?height=138`", latencies, baseline="health")
            if failures:
                result.notes.append(f"Repetition {rep + 1}: {failures} weight requests did not answer 200.")
            log.info("repetition %d: weight p99 %.1f ms", rep + 1, percentile(latencies, 99))
    result.measures.sort(key=lambda m: (m.baseline_only, m.key))
    return result
