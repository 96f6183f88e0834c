"""Orchestration steps shared by the shutdown and the reconcile: list the workspaces, stop/start instances and
confirm them within ARM's request budget, price what was stopped or started, save the report. Generator helpers
run inline (`yield from`) in the calling orchestrator: only context calls, deterministic.

Inline rather than a sub-orchestration per wave: a sub-orchestration that runs longer than 30 s never reports
its completion to its parent on the in-memory Durable Task backend devhost runs on (its watcher gives up after
30 s), and with ARM's write bucket 500 stops take ~32 s. The history stays small instead: one activity per
batch of 200 POSTs, and per poll tick one timer and one activity that lists every workspace still pending and
returns only the instances whose state changed.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.compute.arm import TRANSITIONAL_STATES, ActAnswer, ComputeInstance, Listing, StatesView, StopOutcome
from shared.compute.report import InstanceResult
from shared.compute.savings import priced_sizes, with_savings
from shared.compute.schedules import Schedule

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500
MAX_REQUESTS = 3  # a stop/start re-issued after a 409 (in transition) at most this many times in all
WRITE_BATCH = 200  # POSTs per activity: ARM's write burst per subscription (200 tokens, then 10/s)
TARGET = {"stop": "Stopped", "start": "Running"}
DONE_OUTCOME = {"stop": "stopped", "start": "started"}
LIST_ROUNDS = 3  # listing attempts per workspace; the activity's own SDK retries happen inside each
REPORT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


def brief(err: BaseException | str) -> str:
    """A message on one bounded line: hosts may append a stack trace, and the error of every instance is part
    of the orchestration's output and history (kept small, replayed on each step)."""
    text = " ".join(str(err).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _subscription(workspace: str) -> str:
    return workspace.split("/", 1)[0].lower()


def _batches(indexes: list[int], items: list[dict[str, Any]]) -> list[list[list[int]]]:
    """Rounds of batches: round k holds the k-th batch of every subscription (subscriptions have their own
    ARM budgets, so they go in parallel; a subscription's batches go one after the other)."""
    by_sub: dict[str, list[int]] = {}
    for i in indexes:
        by_sub.setdefault(_subscription(items[i]["workspace"]), []).append(i)
    chunked = [[group[k : k + WRITE_BATCH] for k in range(0, len(group), WRITE_BATCH)] for group in by_sub.values()]
    rounds = max((len(c) for c in chunked), default=0)
    return [[c[k] for c in chunked if k < len(c)] for k in range(rounds)]


@dataclass
class _Item:
    """One instance on its way to its target state: what is sent to ARM and what was last heard of it."""

    request: dict[str, Any]  # {workspace, name, action, state}: the activity's input; state refreshed on a re-send
    last_state: str
    sent: int = 0  # requests sent so far (a re-send after a 409 or a 429/5xx counts)
    status: str = "unsent"  # the activity's last answer: accepted, in_transition, retryable, failed, ...
    message: str = ""
    result: dict[str, Any] | None = None  # the outcome, once it ended

    @property
    def action(self) -> str:
        return str(self.request["action"])


class _Confirmation:
    """The phases of `act_and_confirm` over its items: send, settle each answer, poll, judge, expire."""

    def __init__(
        self,
        context: df.DurableOrchestrationContext,
        items: list[dict[str, Any]],
        *,
        timeout_seconds: int,
        attempts: int,
        trace: Mapping[str, str],
        requests: dict[str, int],
    ) -> None:
        self.context = context
        self.items = [_Item(dict(item), str(item.get("state") or "Unknown")) for item in items]
        self.started = context.current_utc_datetime
        self.deadline = self.started + timedelta(seconds=timeout_seconds)
        self.timeout_seconds = timeout_seconds
        self.attempts = attempts
        self.trace = trace
        self.requests = requests

    def pending(self) -> list[int]:
        return [i for i, item in enumerate(self.items) if item.result is None]

    def count(self, arm_requests: Mapping[str, int]) -> None:
        for kind in ("reads", "writes"):
            self.requests[kind] = self.requests.get(kind, 0) + int(arm_requests.get(kind, 0))

    def end(self, i: int, outcome: str, error: str | None = None, note: str | None = None) -> None:
        item = self.items[i]
        seconds = (self.context.current_utc_datetime - self.started).total_seconds()
        item.result = {"outcome": outcome, "error": error, "note": note, "seconds": seconds}
        if not self.context.is_replaying:
            log.info(
                "%s of %s in %s: %s after %.1f s %s",
                item.action,
                item.request["name"],
                item.request["workspace"],
                outcome,
                seconds,
                error or note or "",
            )

    def settle(self, i: int, outcome: StopOutcome) -> None:
        """Take the activity's answer to one request; end the item when the answer is final."""
        item = self.items[i]
        item.status = str(outcome.status)
        item.message = str(outcome.message or "")
        if outcome.state_before:
            item.last_state = str(outcome.state_before)
        if item.status == "already_stopped":
            self.end(i, "already_stopped", note=item.message)
        elif item.status == "already_running":
            self.end(i, "skipped", note=f"already {item.last_state}")
        elif item.status == "not_found":
            self.end(i, "skipped", note="not found (deleted meanwhile?)")
        elif item.status == "failed":
            self.end(i, "failed", error=brief(item.message) or f"ARM refused the {item.action}")
        elif item.status == "retryable" and item.sent >= self.attempts:
            error = f"{item.action} request failed after {item.sent} attempt(s): {brief(item.message)}"
            self.end(i, "failed", error=error)

    def send(self, indexes: list[int]) -> Generator[Any, Any, None]:
        """One POST per item, in batches per subscription (rounds in parallel across subscriptions)."""
        requests = [item.request for item in self.items]
        for batches in _batches(indexes, requests):
            answers = yield self.context.task_all(
                [
                    self.context.call_activity(
                        names.ACT_ON_COMPUTE_INSTANCES,
                        {"items": [requests[i] for i in batch], "trace": dict(self.trace)},
                    )
                    for batch in batches
                ]
            )
            for batch, output in zip(batches, answers, strict=True):
                answer = ActAnswer.from_dict(output)
                self.count(answer.arm_requests)
                for i, outcome in zip(batch, answer.outcomes, strict=True):
                    self.items[i].sent += 1
                    self.settle(i, outcome)

    def expire(self, pending: list[int]) -> None:
        """The deadline passed: every item still pending ends, failed or timed out."""
        for i in pending:
            item = self.items[i]
            if item.status == "retryable":
                self.end(i, "failed", error=f"{item.action} request failed: {brief(item.message)}")
            else:
                target, seen = TARGET[item.action], item.last_state
                self.end(i, "timed_out", error=f"not {target} within {self.timeout_seconds} s (last seen {seen})")

    def read_states(self, pending: list[int]) -> Generator[Any, Any, StatesView]:
        """One listing of every workspace with an item awaiting its state (not those waiting to be re-sent)."""
        watched: dict[str, list[list[str]]] = {}
        for i in pending:
            item = self.items[i]
            if item.status != "retryable":
                watched.setdefault(item.request["workspace"], []).append([item.request["name"], item.last_state])
        if not watched:
            return StatesView()
        output = yield self.context.call_activity(
            names.READ_COMPUTE_STATES, {"workspaces": watched, "trace": dict(self.trace)}
        )
        view = StatesView.from_dict(output)
        self.count(view.arm_requests)
        return view

    def judge(self, i: int, view: StatesView) -> bool:
        """Take this tick's view of one pending item: end it, or say whether its request must be sent again."""
        item = self.items[i]
        if item.status == "retryable":
            return True
        ws, name, action = item.request["workspace"], item.request["name"], item.action
        if ws in view.errors:
            return False  # the workspace could not be listed this tick: look again on the next one
        settled = view.states.get(ws, {})
        if name not in settled:
            return False  # unchanged since the last tick
        state_view = settled[name]
        if state_view is None:
            doing = "stopping" if action == "stop" else "starting"
            self.end(i, "skipped", note=f"not found (deleted while {doing})")
            return False
        state, op_name, op_status = state_view
        item.last_state = state
        if state in TRANSITIONAL_STATES:
            return False
        if state == TARGET[action]:
            self.end(i, DONE_OUTCOME[action], note="after a 409, re-checked" if item.sent > 1 else None)
        elif op_name == action.capitalize() and op_status == "Failed":
            self.end(i, "failed", error=f"the {action} operation failed in Azure ML; the instance is {state}")
        elif action == "stop" and state == "JobRunning" and item.status == "in_transition":
            self.end(i, "skipped", note="a job started meanwhile (JobRunning); not interrupted")
        elif item.status == "in_transition":
            if item.sent >= MAX_REQUESTS:
                self.end(i, "failed", error=f"still {state} after {item.sent} {action} requests answered 409")
            else:
                item.request = {**item.request, "state": state}
                return True
        # an accepted request with a stable state: ARM may show the old state briefly after the 202
        return False


def act_and_confirm(
    context: df.DurableOrchestrationContext,
    items: list[dict[str, Any]],
    *,
    timeout_seconds: int,
    poll_seconds: int,
    attempts: int,
    trace: Mapping[str, str],
    requests: dict[str, int],
) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Stop or start each item ({workspace, name, action, state}) and confirm it reached its target state.

    One POST per instance (the listed state is trusted: no read before it), in batches per subscription;
    confirmation by listing the pending workspaces once per poll tick. Re-sends: after a 409 once the state is
    stable, after a 429/5xx (`retryable`) on the next tick, bounded. Every ending is an outcome
    ({outcome, error, note, seconds} per item, in order); `requests` accumulates the ARM requests counted.
    """
    run = _Confirmation(
        context, items, timeout_seconds=timeout_seconds, attempts=attempts, trace=trace, requests=requests
    )
    poll = timedelta(seconds=poll_seconds)
    yield from run.send(list(range(len(run.items))))
    while pending := run.pending():
        if context.current_utc_datetime >= run.deadline:
            run.expire(pending)
            break
        yield context.create_timer(min(context.current_utc_datetime + poll, run.deadline))
        view = yield from run.read_states(pending)
        resend = [i for i in pending if run.judge(i, view)]
        if resend:
            yield from run.send(resend)
    return [item.result for item in run.items if item.result is not None]


def list_workspaces(
    context: df.DurableOrchestrationContext,
    workspaces: tuple[str, ...] | list[str],
    *,
    poll_seconds: int,
    trace: Mapping[str, str],
    requests: dict[str, int],
) -> Generator[Any, Any, dict[str, Listing]]:
    """The listing of every workspace, by name. A listing that fails with 429/5xx (after the SDK's retries) is
    tried again on a durable timer, `LIST_ROUNDS` times in all; the list activity returns failures as values so
    one workspace cannot fail the task_all of all. `requests` accumulates the ARM requests counted."""
    listings: dict[str, Listing] = {}
    pending = list(workspaces)
    for attempt in range(1, LIST_ROUNDS + 1):
        if not pending:  # df's task_all([]) yields None, not []: an empty workspace list lists nothing
            break
        outputs = yield context.task_all(
            [
                context.call_activity(names.LIST_COMPUTE_INSTANCES, {"workspace": ws, "trace": dict(trace)})
                for ws in pending
            ]
        )
        for ws, output in zip(pending, outputs, strict=True):
            listings[ws] = Listing.from_dict(output)
            for kind in ("reads", "writes"):
                requests[kind] += int(listings[ws].arm_requests.get(kind, 0))
        pending = [ws for ws in pending if listings[ws].retryable]
        if not pending or attempt == LIST_ROUNDS:
            break
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=poll_seconds * attempt))
    return listings


def save_report(
    context: df.DurableOrchestrationContext, blob_name: str, report: dict[str, Any], trace: Mapping[str, str]
) -> Generator[Any, Any, None]:
    """Save `report` to its blob and note where (`report_blob`) or why not (`report_error`) in the report."""
    try:
        report["report_blob"] = yield context.call_activity_with_retry(
            names.SAVE_SHUTDOWN_REPORT,
            REPORT_RETRY,
            {"blob_name": blob_name, "report": report, "trace": dict(trace)},
        )
        report["report_error"] = None
    except Exception as err:  # the report is still the output; only its copy in storage is missing
        report["report_blob"] = None
        report["report_error"] = f"saving the report to {blob_name} failed: {brief(err)}"


def priced_results(
    context: df.DurableOrchestrationContext,
    results: list[InstanceResult],
    listed: dict[tuple[str, str], ComputeInstance],
    at: datetime,
    tag: str,
    shutdown_schedule: str,
    schedules: dict[str, Schedule] | None,
    trace: Mapping[str, str],
) -> Generator[Any, Any, tuple[list[InstanceResult], str | None]]:
    """The results with their savings estimates (prices through an activity); a pricing failure is a note."""
    sizes = priced_sizes(results, listed)
    if not sizes:
        return results, None
    prices: dict[str, Any] = {}
    error: str | None = None
    try:
        answer = yield context.call_activity(names.PRICE_COMPUTE_SIZES, {"sizes": sizes, "trace": dict(trace)})
        prices, error = answer["prices"], answer.get("error")
    except Exception as err:
        error = f"prices not read: {brief(err)}"
    priced = with_savings(
        results, listed, prices, at, schedules=schedules, tag=tag, shutdown_schedule=shutdown_schedule
    )
    return priced, error
