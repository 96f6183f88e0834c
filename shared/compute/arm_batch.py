"""ARM calls of one step for many instances of one workspace: stop/start POSTs sent at given times (the pace the
subscription's write bucket allows), each its own span, each counted on the wire."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.arm_budget import RequestCounts, counting
from shared.compute import arm
from shared.errors import ComputeError
from shared.settings import Workspace
from shared.telemetry import carrier_span

log = logging.getLogger(__name__)

SEND_THREADS = 16  # POSTs in flight at once; ARM's write bucket (the offsets) is the limit, not this


@dataclass(frozen=True)
class Post:
    """One stop or start to send: the instance, the action, the state it was last seen in (no read before)."""

    name: str
    action: str  # stop | start
    state: str | None


def send_paced(
    workspace: str, posts: Sequence[Post], offsets: Sequence[float], trace: Mapping[str, str] | None
) -> tuple[list[arm.StopOutcome], RequestCounts]:
    """Send each POST `offsets[i]` seconds from now (or at once when that has passed); one outcome each, in order.

    A 429/5xx that outlived the SDK's retries is the outcome `retryable` and any other error `failed` (values: one
    instance cannot fail the others).
    """
    target = Workspace.parse(workspace)
    start = time.monotonic()

    def one(i: int) -> tuple[arm.StopOutcome, RequestCounts]:
        post = posts[i]
        delay = start + offsets[i] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids = {"workspace": workspace, "compute": post.name}
        with carrier_span(f"{post.action}_compute_instance", trace, ids), counting() as counts:
            begin = arm.begin_stop if post.action == "stop" else arm.begin_start
            try:
                out = begin(target, post.name, state=post.state)
            except arm.RetryableComputeError as err:
                out = arm.StopOutcome("retryable", post.state, str(err))
            except ComputeError as err:
                out = arm.StopOutcome("failed", post.state, str(err))
        log.info("%s %s in %s: %s %s", post.action, post.name, workspace, out.status, out.message)
        return out, counts

    total = RequestCounts()
    if not posts:
        return [], total
    with ThreadPoolExecutor(min(SEND_THREADS, len(posts))) as pool:
        done = list(pool.map(one, range(len(posts))))
    for _, counts in done:
        total.reads += counts.reads
        total.writes += counts.writes
    return [out for out, _ in done], total


def list_workspace(workspace: str) -> tuple[list[arm.ComputeInstance] | None, str | None, bool, RequestCounts]:
    """(instances, None, False, counts) or (None, error, retryable, counts): one listing, one request per page."""
    with counting() as counts:
        try:
            return arm.list_instances(Workspace.parse(workspace)), None, False, counts
        except arm.RetryableComputeError as err:
            return None, str(err), True, counts
        except ComputeError as err:
            return None, str(err), False, counts
