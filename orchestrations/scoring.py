"""Scoring orchestration: plan byte-range chunks -> score them in parallel batches -> commit one predictions CSV.

Inputs and outputs stay small (blob ids, ranges, counts): data moves between blobs, never through history.
Chunks are scored `parallel` at a time, which bounds worker memory to about chunk size x parallel; more than
`wave_size` chunks go through sub-orchestrations so no history grows with the file. A run that fails leaves
`<errors container>/<name>.error.json` saying why (shared/scoring/error_document.py) and still fails with its own error.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.errors import ScoringError

bp = df.Blueprint()

# Transient failures (storage hiccups, a worker lost mid-chunk) are retried; a deterministic failure
# (bad input) fails the same way three times within seconds and the run reports it.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
MAX_REALIGN_ROUNDS = 2
# Commits that found some staged blocks discarded by another run's commit (see scoring_commit.commit_predictions).
MAX_COMMIT_ROUNDS = 5


def _checked(result: dict[str, Any]) -> dict[str, Any]:
    """Activities report input problems as {"error": ...}: fail the run with that message."""
    if "error" in result:
        raise ScoringError(result["error"])
    return result


def _chunk_plan(plan: dict[str, Any], chunks: list[list[int]]) -> dict[str, Any]:
    """The plan restricted to some chunks: what one activity or wave needs, and no more."""
    return {**plan, "chunks": chunks}


def _parallel(run: dict[str, Any]) -> int:
    return max(1, int(run.get("parallel") or 4))


def _score_batches(
    context: df.DurableOrchestrationContext, plan: dict[str, Any], chunks: list[list[int]], run: dict[str, Any]
) -> Generator[Any, Any, list[dict[str, Any]]]:
    parallel = _parallel(run)
    results: list[dict[str, Any]] = []
    for start in range(0, len(chunks), parallel):
        batch = chunks[start : start + parallel]
        tasks = [
            context.call_activity_with_retry(
                names.SCORE_CHUNK,
                RETRY,
                {"plan": _chunk_plan(plan, [chunk]), "index": chunk[0], "trace": run.get("trace")},
            )
            for chunk in batch
        ]
        batch_results = yield context.task_all(tasks)
        results.extend(_checked(r) for r in batch_results)
        if not context.parent_instance_id and not run.get("quiet"):
            _progress(context, results, len(chunks))
    return results


def _progress(context: df.DurableOrchestrationContext, results: list[dict[str, Any]], total: int) -> None:
    context.set_custom_status(
        {
            "stage": "scoring",
            "chunks_done": len(results),
            "chunks_total": total,
            "rows": sum(int(r.get("rows", 0)) for r in results),
        }
    )


def _score(
    context: df.DurableOrchestrationContext, plan: dict[str, Any], chunks: list[list[int]], run: dict[str, Any]
) -> Generator[Any, Any, list[dict[str, Any]]]:
    wave_size = max(1, int(run.get("wave_size", 64)))
    if len(chunks) <= wave_size:
        return (yield from _score_batches(context, plan, chunks, run))
    results: list[dict[str, Any]] = []
    for start in range(0, len(chunks), wave_size):
        wave = chunks[start : start + wave_size]
        child = {"plan": _chunk_plan(plan, wave), "parallel": _parallel(run), "trace": run.get("trace")}
        results.extend((yield context.call_sub_orchestrator(names.SCORING_WAVE_ORCHESTRATOR, child)))
        if not run.get("quiet"):
            _progress(context, results, len(chunks))
    return results


@bp.orchestration_trigger(context_name="context", orchestration=names.SCORING_WAVE_ORCHESTRATOR)
def scoring_wave_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[dict[str, Any]]]:
    """One wave of chunks of a large file, scored in parallel batches; returns their results."""
    run = context.get_input()
    return (yield from _score_batches(context, run["plan"], run["plan"]["chunks"], run))


@bp.orchestration_trigger(context_name="context", orchestration=names.SCORING_ORCHESTRATOR)
def scoring_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan -> score -> realign around quoted line breaks -> commit; a failure leaves an error document."""
    run: dict[str, Any] = context.get_input()
    request = {**run["request"], "run_id": context.instance_id}
    started = context.current_utc_datetime
    plan: dict[str, Any] = {"request": request}
    try:
        plan = yield from _plan(context, request, run)
        results = yield from _score(context, plan, plan["chunks"], run)
        plan, results = yield from _realign(context, plan, results, run)
        committed, results = yield from _commit(context, plan, results, run)
    except Exception as err:
        yield from _record_failure(context, plan["request"], err, run)
        raise
    context.set_custom_status(
        {"stage": "done", "chunks_done": len(results), "chunks_total": len(results), "rows": committed["rows"]}
    )
    return {
        "source": f"{request['container']}/{request['name']}",
        "source_etag": plan["request"]["etag"].strip('"'),
        "chunks": len(results),
        "started": started.isoformat(),
        "finished": context.current_utc_datetime.isoformat(),
        **committed,
    }


def _plan(
    context: df.DurableOrchestrationContext, request: dict[str, Any], run: dict[str, Any]
) -> Generator[Any, Any, dict[str, Any]]:
    context.set_custom_status({"stage": "planning"})
    payload = {"request": request, "trace": run.get("trace"), "run_id": context.instance_id}
    plan = _checked((yield context.call_activity_with_retry(names.PLAN_SCORING_CHUNKS, RETRY, payload)))
    # Waves report progress only when a whole wave ends: say "scoring" (and how many chunks) before the first.
    context.set_custom_status({"stage": "scoring", "chunks_done": 0, "chunks_total": len(plan["chunks"]), "rows": 0})
    return plan


def _merged(
    plan: dict[str, Any], results: list[dict[str, Any]], rescored: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The results in the plan's chunk order, the rescored chunks' results replacing the earlier ones."""
    by_index = {r["index"]: r for r in results} | {r["index"]: r for r in rescored}
    return [by_index[c[0]] for c in plan["chunks"]]


def _realign(
    context: df.DurableOrchestrationContext, plan: dict[str, Any], results: list[dict[str, Any]], run: dict[str, Any]
) -> Generator[Any, Any, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """A chunk boundary fell inside a quoted field with a line break: move those boundaries, score the chunks
    whose ranges changed, keep the others."""
    for _ in range(MAX_REALIGN_ROUNDS):
        if not any(r.get("misaligned") for r in results):
            break
        payload = {"plan": plan, "results": results, "trace": run.get("trace")}
        realigned = _checked((yield context.call_activity_with_retry(names.PLAN_SCORING_CHUNKS, RETRY, payload)))
        changed = [new for old, new in zip(plan["chunks"], realigned["chunks"], strict=True) if old != new]
        # Quietly: progress counted over the few rescored chunks would make "chunks_done" go backwards.
        rescored = yield from _score(context, realigned, changed, {**run, "quiet": True})
        plan, results = realigned, _merged(realigned, results, rescored)
    if any(r.get("misaligned") for r in results):
        request = plan["request"]
        raise ScoringError(
            f"{request['container']}/{request['name']}: could not align chunk boundaries with CSV rows: a quoted "
            "field is not closed (an odd number of quote characters), so the rows after it cannot be told apart"
        )
    return plan, results


def _commit(
    context: df.DurableOrchestrationContext, plan: dict[str, Any], results: list[dict[str, Any]], run: dict[str, Any]
) -> Generator[Any, Any, tuple[dict[str, Any], list[dict[str, Any]]]]:
    rows = sum(int(r["rows"]) for r in results)
    context.set_custom_status(
        {"stage": "committing", "chunks_done": len(results), "chunks_total": len(results), "rows": rows}
    )
    for _ in range(MAX_COMMIT_ROUNDS):
        payload = {"plan": plan, "results": results, "trace": run.get("trace")}
        committed = _checked((yield context.call_activity_with_retry(names.COMMIT_PREDICTIONS, RETRY, payload)))
        lost = set(committed.get("restage") or [])
        if not lost:
            return committed, results
        # Another run of this output committed first, which discarded the blocks this run had staged (Azure keeps
        # only the blocks a commit lists). Score those chunks again, quietly, and commit again.
        rescored = yield from _score(context, plan, [c for c in plan["chunks"] if c[0] in lost], {**run, "quiet": True})
        results = _merged(plan, results, rescored)
    request = plan["request"]
    raise ScoringError(
        f"{request['container']}/{request['name']}: other runs of the same output kept committing while this "
        f"run committed ({MAX_COMMIT_ROUNDS} rounds); score the file again (POST /api/scoring with force)"
    )


def _record_failure(
    context: df.DurableOrchestrationContext, request: dict[str, Any], err: Exception, run: dict[str, Any]
) -> Generator[Any, Any, None]:
    """Leave `<errors container>/<name>.error.json` saying why, where the file's owner looks; the run still fails.

    Once, without retries: the activity does its best and never fails the run with an error of its own.
    """
    payload = {"request": {**request, "run_id": context.instance_id}, "error": str(err), "trace": run.get("trace")}
    try:
        recorded = yield context.call_activity(names.RECORD_SCORING_ERROR, payload)
    except Exception:  # the run's own error is what the run reports
        recorded = {}
    document = str((recorded or {}).get("error_document") or "")
    context.set_custom_status({"stage": "failed", "error_document": document} if document else {"stage": "failed"})
