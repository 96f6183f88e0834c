"""ARM's request budget, seen from the app: counting the requests an activity sends, pacing writes.

ARM limits each subscription (and principal) with token buckets: reads 250 refilled at 25/s, writes 200
refilled at 10/s; over the limit it answers 429 with Retry-After, and every answer says how many requests of
its kind remain (`x-ms-ratelimit-remaining-subscription-reads/-writes`). Two parts, both an azure-core
per-retry policy on every MLClient, so each request on the wire is seen (retries included):

- `counting()` counts the requests sent by the calling thread while it is active (activities report
  `arm_requests` from it);
- a client-side copy of the write bucket per subscription makes a burst of stops wait for tokens instead of
  collecting 429s: 500 stops in one subscription are paced at ARM's refill rate, each sent once. The copy is
  driven by ARM's `remaining` header (other principals and other worker processes spend the same budget):
  while answers do not carry it, nothing is paced (an endpoint that sends none, e.g. a stand-in without
  limits, is never paced); after it, the copy never holds more than ARM said remained, and refills at ARM's rate.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from shared.payloads import Payload

READ_CAPACITY, READ_REFILL_PER_SECOND = 250.0, 25.0
WRITE_CAPACITY, WRITE_REFILL_PER_SECOND = 200.0, 10.0
REMAINING_WRITES_HEADER = "x-ms-ratelimit-remaining-subscription-writes"
MAX_PACING_WAIT_SECONDS = 120.0  # beyond this a write is sent anyway: ARM's 429 + Retry-After take over


@dataclass
class RequestCounts(Payload):
    reads: int = 0
    writes: int = 0

    def add(self, method: str) -> None:
        if method.upper() in ("GET", "HEAD"):
            self.reads += 1
        else:
            self.writes += 1


_current: ContextVar[RequestCounts | None] = ContextVar("arm_request_counts", default=None)


@contextlib.contextmanager
def counting() -> Iterator[RequestCounts]:
    """Counts the ARM requests sent by this thread (MLClient calls are synchronous) inside the block."""
    counts = RequestCounts()
    token = _current.set(counts)
    try:
        yield counts
    finally:
        _current.reset(token)


class WriteBucket:
    """A local copy of one subscription's write bucket: `take()` blocks until a token is there."""

    def __init__(self, capacity: float = WRITE_CAPACITY, refill_per_second: float = WRITE_REFILL_PER_SECOND) -> None:
        self.capacity = capacity
        self.refill = refill_per_second
        self.tokens: float | None = None  # unknown until ARM says how many writes remain
        self.answered = False  # a write was answered (with the header or without it)
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        if self.tokens is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
        self.updated = now

    def take(self, max_wait: float = MAX_PACING_WAIT_SECONDS) -> float:
        """Reserve a token (the balance may go negative: later callers queue behind); returns the wait."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            if self.tokens is None:
                return 0.0
            self.tokens -= 1
            wait = 0.0 if self.tokens >= 0 else -self.tokens / self.refill
        wait = min(wait, max_wait)
        if wait > 0:
            time.sleep(wait)
        return wait

    def observe(self, remaining: float) -> None:
        """ARM said how many writes remain: never believe we have more than that."""
        with self._lock:
            self._refill(time.monotonic())
            self.tokens = remaining if self.tokens is None else min(self.tokens, remaining)
            self.answered = True

    def unlimited(self) -> None:
        """A write answered without the header: this endpoint reports no limit, so nothing is paced."""
        with self._lock:
            self.tokens = None
            self.answered = True

    @property
    def reports_no_limit(self) -> bool:
        """The endpoint answered writes without saying what remains (a stand-in without limits; never ARM)."""
        return self.answered and self.tokens is None

    def exhausted(self) -> None:
        """A 429 on a write: the bucket is empty."""
        self.observe(0.0)


_buckets: dict[str, WriteBucket] = {}
_buckets_lock = threading.Lock()


def write_bucket(subscription: str) -> WriteBucket:
    with _buckets_lock:
        bucket = _buckets.get(subscription.lower())
        if bucket is None:
            bucket = _buckets[subscription.lower()] = WriteBucket()
        return bucket


def budget_policy(subscription: str) -> Any:
    """The azure-core policy (per retry: after RetryPolicy, so each attempt on the wire passes it)."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    bucket = write_bucket(subscription)

    class ArmBudgetPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            method = str(request.http_request.method)
            if method.upper() not in ("GET", "HEAD"):
                bucket.take()
            counts = _current.get()
            if counts is not None:
                counts.add(method)

        def on_response(self, request: Any, response: Any) -> None:
            if str(request.http_request.method).upper() in ("GET", "HEAD"):
                return
            http = response.http_response
            if http.status_code == 429:
                bucket.exhausted()
                return
            remaining = http.headers.get(REMAINING_WRITES_HEADER)
            if remaining is None:
                bucket.unlimited()
                return
            with contextlib.suppress(ValueError):
                bucket.observe(float(remaining))

    return ArmBudgetPolicy()


# --- the write bucket shared by every worker process and instance: a small blob per subscription ------------------
# A process's own copy (above) cannot see the writes of another process: two workspaces of one subscription acting
# at once from two workers (or two Azure instances) would each refill at ARM's rate and collect 429s. So a step
# about to send n POSTs first reserves n tokens in `arm/{subscription}.writes.json` ({tokens, at}) with one
# conditional write, and sends its k-th POST when the bucket has refilled to it.
SHARED_BUCKET_ATTEMPTS = 20


def shared_bucket_blob(subscription: str) -> str:
    return f"arm/{subscription.strip().lower()}.writes.json"


UNLIMITED_MEMORY_SECONDS = 600.0  # how long "this endpoint reports no write limit" is believed without a new answer


def unlimited_at(state: Any, now: float) -> bool:
    """Whether the bucket's state says, recently enough, that the endpoint's answers carry no write limit: then
    nothing is paced (as the per-process copy does); ARM always sends the header, so in Azure this is never so."""
    try:
        return now - float(state["unlimited_at"]) < UNLIMITED_MEMORY_SECONDS
    except (TypeError, KeyError, ValueError):
        return False


def take_from(state: Any, writes: int, now: float) -> tuple[dict[str, float], float]:
    """The bucket after taking `writes` tokens at `now` (epoch seconds), and its balance before (may be negative).

    A missing or unreadable state starts full: the worst case is one burst of 429s, which ARM's Retry-After and the
    per-process copy absorb.
    """
    tokens = WRITE_CAPACITY
    try:
        last = float(state["at"])
        tokens = min(WRITE_CAPACITY, float(state["tokens"]) + max(0.0, now - last) * WRITE_REFILL_PER_SECOND)
        # A reservation whose clock reads earlier than the last one's (another process, a retry after a lost
        # race) must not move `at` back: the interval in between would be refilled twice.
        now = max(now, last) if math.isfinite(last) else now
    except (TypeError, KeyError, ValueError):
        pass
    if not math.isfinite(tokens):  # NaN or infinite from a damaged blob
        tokens = WRITE_CAPACITY
    if tokens >= WRITE_CAPACITY and writes > 0:
        # A full bucket at ARM refills nothing until our first POSTs land there: count its refill from then.
        now += FULL_BUCKET_LAG_SECONDS
    return {"tokens": tokens - writes, "at": now}, tokens


# Tokens not counted on: ARM's bucket refills only once it is below its capacity, that is once our first POSTs
# have landed, while our copy counts its refill from the reservation; the time in between (a blob write, a POST's
# way to ARM) would otherwise be refilled in our copy only, and a 429 costs a second request.
PACING_MARGIN = 5.0
FULL_BUCKET_LAG_SECONDS = 1.0  # how late the first POSTs of a burst may land (a loaded host, a slow network)


def pacing_offsets(writes: int, balance: float) -> list[float]:
    """Seconds from now at which each of `writes` POSTs may go, given the bucket's balance before taking them:
    those the balance covers (less the margin) at once, the rest at ARM's refill rate."""
    usable = balance - PACING_MARGIN
    return [max(0.0, (k + 1) - usable) / WRITE_REFILL_PER_SECOND for k in range(writes)]


def reserve_shared_writes(container: str, subscription: str, writes: int, now: float | None = None) -> float:
    """Reserve `writes` tokens of `subscription`'s shared write bucket; returns the balance before (see take_from).

    The clock is read at each attempt, right before the conditional write (`now` fixes it, for tests): the POSTs
    follow at once."""
    import json

    from shared import blobs
    from shared.errors import OutputChangedError

    name = shared_bucket_blob(subscription)
    for _ in range(SHARED_BUCKET_ATTEMPTS):
        found = blobs.read_blob_etag(container, name)
        state: Any = None
        if found is not None:
            try:
                state = json.loads(found[0])
            except ValueError:
                state = None
        moment = time.time() if now is None else now
        if unlimited_at(state, moment):
            return math.inf
        new, balance = take_from(state, writes, moment)
        try:
            blobs.upload_if(
                container,
                name,
                json.dumps(new).encode("utf-8"),
                content_type="application/json",
                if_match=found[1] if found is not None else None,
            )
        except OutputChangedError:
            continue  # another step reserved meanwhile: read its balance and try again
        return balance
    raise OutputChangedError(
        f"{container}/{name}: could not reserve {writes} write(s) in {SHARED_BUCKET_ATTEMPTS} tries"
    )


def remember_limits(container: str, subscription: str, now: float | None = None) -> None:
    """After a step's writes: keep in the shared bucket whether this process saw the endpoint report a write limit
    (best effort: a lost race only means the next step learns it again)."""
    import json

    from shared import blobs
    from shared.errors import OutputChangedError

    bucket = write_bucket(subscription)
    if not bucket.answered:
        return
    name = shared_bucket_blob(subscription)
    found = blobs.read_blob_etag(container, name)
    try:
        state = json.loads(found[0]) if found is not None else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    moment = time.time() if now is None else now
    known = unlimited_at(state, moment)
    if bucket.reports_no_limit == known and (not known or moment - float(state["unlimited_at"]) < 60):
        return  # nothing new to say (an unlimited endpoint is confirmed once a minute)
    if bucket.reports_no_limit:
        state["unlimited_at"] = moment
    else:
        state.pop("unlimited_at", None)
    body = json.dumps(state).encode("utf-8")
    etag = found[1] if found is not None else None
    with contextlib.suppress(OutputChangedError):
        blobs.upload_if(container, name, body, content_type="application/json", if_match=etag)
