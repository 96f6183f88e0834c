"""Orchestration steps shared by the shutdown and the reconcile: stop/start instances and confirm them, within
ARM's request budget; price what was stopped or started. Generator helpers run inline (`yield from`) in the
calling orchestrator: only context calls, deterministic.

Inline rather than a sub-orchestration per wave: a sub-orchestration that runs longer than 30 s never reports
its completion to its parent on the in-memory Durable Task backend devhost runs on (its watcher gives up after
30 s), and with ARM's write bucket 500 stops take ~32 s. The history stays small instead: one activity per
batch of 200 POSTs, and per poll tick one timer and one activity that lists every workspace still pending and
returns only the instances whose state changed.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.compute import TRANSITIONAL_STATES, ComputeInstance
from shared.savings import priced_sizes, with_savings
from shared.schedules import Schedule
from shared.shutdown_report import InstanceResult

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500
MAX_REQUESTS = 3  # a stop/start re-issued after a 409 (in transition) at most this many times in all
WRITE_BATCH = 200  # POSTs per activity: ARM's write burst per subscription (200 tokens, then 10/s)
TARGET = {"stop": "Stopped", "start": "Running"}
DONE_OUTCOME = {"stop": "stopped", "start": "started"}


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
    items = [dict(item) for item in items]
    started = context.current_utc_datetime
    deadline = started + timedelta(seconds=timeout_seconds)
    poll = timedelta(seconds=poll_seconds)
    sent = [0] * len(items)
    status = ["unsent"] * len(items)
    last_message = [""] * len(items)
    last_state = [str(item.get("state") or "Unknown") for item in items]
    results: list[dict[str, Any] | None] = [None] * len(items)

    def count(answer: Mapping[str, Any]) -> None:
        for kind in ("reads", "writes"):
            requests[kind] = requests.get(kind, 0) + int((answer.get("arm_requests") or {}).get(kind, 0))

    def end(i: int, outcome: str, error: str | None = None, note: str | None = None) -> None:
        seconds = (context.current_utc_datetime - started).total_seconds()
        results[i] = {"outcome": outcome, "error": error, "note": note, "seconds": seconds}
        if not context.is_replaying:
            item = items[i]
            log.info(
                "%s of %s in %s: %s after %.1f s %s",
                item["action"],
                item["name"],
                item["workspace"],
                outcome,
                seconds,
                error or note or "",
            )

    def settle(i: int, outcome: Mapping[str, Any]) -> None:
        action = items[i]["action"]
        status[i] = str(outcome["status"])
        last_message[i] = str(outcome.get("message") or "")
        if outcome.get("state_before"):
            last_state[i] = str(outcome["state_before"])
        if status[i] == "already_stopped":
            end(i, "already_stopped", note=last_message[i])
        elif status[i] == "already_running":
            end(i, "skipped", note=f"already {last_state[i]}")
        elif status[i] == "not_found":
            end(i, "skipped", note="not found (deleted meanwhile?)")
        elif status[i] == "failed":
            end(i, "failed", error=brief(last_message[i]) or f"ARM refused the {action}")
        elif status[i] == "retryable" and sent[i] >= attempts:
            end(i, "failed", error=f"{action} request failed after {sent[i]} attempt(s): {brief(last_message[i])}")

    def send(indexes: list[int]) -> Generator[Any, Any, None]:
        for batches in _batches(indexes, items):
            answers = yield context.task_all(
                [
                    context.call_activity(
                        names.ACT_ON_COMPUTE_INSTANCES,
                        {"items": [items[i] for i in batch], "trace": dict(trace)},
                    )
                    for batch in batches
                ]
            )
            for batch, answer in zip(batches, answers, strict=True):
                count(answer)
                for i, outcome in zip(batch, answer["outcomes"], strict=True):
                    sent[i] += 1
                    settle(i, outcome)

    yield from send(list(range(len(items))))
    while True:
        pending = [i for i in range(len(items)) if results[i] is None]
        if not pending:
            break
        if context.current_utc_datetime >= deadline:
            for i in pending:
                action = items[i]["action"]
                if status[i] == "retryable":
                    end(i, "failed", error=f"{action} request failed: {brief(last_message[i])}")
                else:
                    seen = last_state[i]
                    end(i, "timed_out", error=f"not {TARGET[action]} within {timeout_seconds} s (last seen {seen})")
            break
        yield context.create_timer(min(context.current_utc_datetime + poll, deadline))
        watched: dict[str, list[list[str]]] = {}
        for i in pending:
            if status[i] != "retryable":
                watched.setdefault(items[i]["workspace"], []).append([items[i]["name"], last_state[i]])
        view: dict[str, Any] = {"states": {}, "errors": {}}
        if watched:
            view = yield context.call_activity(names.READ_COMPUTE_STATES, {"workspaces": watched, "trace": dict(trace)})
            count(view)
        resend: list[int] = []
        for i in pending:
            item = items[i]
            if status[i] == "retryable":
                resend.append(i)
                continue
            ws = item["workspace"]
            if ws in view["errors"]:
                continue  # the workspace could not be listed this tick: look again on the next one
            settled = view["states"].get(ws, {})
            if item["name"] not in settled:
                continue  # unchanged since the last tick
            state_view = settled[item["name"]]
            if state_view is None:
                doing = "stopping" if item["action"] == "stop" else "starting"
                end(i, "skipped", note=f"not found (deleted while {doing})")
                continue
            state, op_name, op_status = state_view
            last_state[i] = state
            if state in TRANSITIONAL_STATES:
                continue
            if state == TARGET[item["action"]]:
                end(i, DONE_OUTCOME[item["action"]], note="after a 409, re-checked" if sent[i] > 1 else None)
            elif op_name == item["action"].capitalize() and op_status == "Failed":
                end(i, "failed", error=f"the {item['action']} operation failed in Azure ML; the instance is {state}")
            elif item["action"] == "stop" and state == "JobRunning" and status[i] == "in_transition":
                end(i, "skipped", note="a job started meanwhile (JobRunning); not interrupted")
            elif status[i] == "in_transition":
                if sent[i] >= MAX_REQUESTS:
                    end(i, "failed", error=f"still {state} after {sent[i]} {item['action']} requests answered 409")
                else:
                    items[i] = {**item, "state": state}
                    resend.append(i)
            # an accepted request with a stable state: ARM may show the old state briefly after the 202
        if resend:
            yield from send(resend)
    return [r for r in results if r is not None]


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
