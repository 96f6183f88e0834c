"""Scoring orchestration: plan byte-range chunks -> score them wave by wave -> realign around quoted line breaks ->
commit one predictions CSV.

Histories stay small whatever the file's size: the planner keeps the plan and the chunk ranges in the run's blobs
(shared/scoring/waves.py) and returns the plan without them; each wave (`wave_size` chunks, a sub-orchestration
when there are several, given only a `RunRef`) loads its chunks, scores them `parallel` at a time (which bounds
worker memory to about chunk size x parallel) and saves their results to its blob; the parent keeps one
`WaveSummary` per wave. A run
that fails leaves `<errors container>/<name>.error.json` saying why (shared/scoring/error_document.py) and still
fails with its own error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from typing import Any, TypeVar

import azure.durable_functions as df

from shared import names
from shared.errors import ScoringError
from shared.payloads import Payload
from shared.scoring.payloads import (
    ActivityRefusal,
    ChunkPlan,
    ChunkResult,
    ChunkTask,
    CommitResult,
    ErrorDocument,
    FailedRun,
    PlannedRun,
    PlanTask,
    RealignedWaves,
    RunTask,
    ScoringOutcome,
    ScoringRequest,
    ScoringRun,
    WaveResults,
    WaveSummary,
    WaveTask,
)

bp = df.Blueprint()

# Transient failures (storage hiccups, a worker lost mid-chunk) are retried; a deterministic failure
# (bad input) fails the same way three times within seconds and the run reports it.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
MAX_REALIGN_ROUNDS = 2
# Commits that found some staged blocks discarded by another run's commit (see shared/scoring/commit.py).
MAX_COMMIT_ROUNDS = 5

P = TypeVar("P", bound=Payload)
Summaries = dict[int, WaveSummary]
OnBatch = Callable[[list[ChunkResult]], None]


def _answer(result: Any, kind: type[P]) -> P:
    """An activity's answer as its payload; a refusal (input that will never score) fails the run with its message."""
    if isinstance(result, dict) and "error" in result:
        raise ScoringError(ActivityRefusal.from_dict(result).error)
    return kind.from_dict(result)


def _call(
    context: df.DurableOrchestrationContext, activity: str, payload: Payload, kind: type[P]
) -> Generator[Any, Any, P]:
    """Run an activity (retried on transient failures) and read its answer as `kind`."""
    return _answer((yield context.call_activity_with_retry(activity, RETRY, payload.to_dict())), kind)


# --- one wave ------------------------------------------------------------------------------------------------


def _score_wave(
    context: df.DurableOrchestrationContext, task: WaveTask, on_batch: OnBatch | None = None
) -> Generator[Any, Any, WaveSummary]:
    """Score the chunks of one wave that have no current result; keep their results in the wave's blob."""
    plan = yield from _call(context, names.LOAD_SCORING_WAVE, task, ChunkPlan)
    results = yield from _score_chunks(context, plan, task, on_batch)
    saved = WaveResults(run=task.run, wave=task.wave, results=tuple(results), trace=task.trace)
    return (yield from _call(context, names.SAVE_SCORING_WAVE, saved, WaveSummary))


def _score_chunks(
    context: df.DurableOrchestrationContext, plan: ChunkPlan, task: WaveTask, on_batch: OnBatch | None
) -> Generator[Any, Any, list[ChunkResult]]:
    """The plan's chunks scored `parallel` at a time, each activity given a plan holding only its chunk."""
    parallel = max(1, task.parallel)
    results: list[ChunkResult] = []
    for start in range(0, len(plan.chunks), parallel):
        tasks = [
            context.call_activity_with_retry(
                names.SCORE_CHUNK, RETRY, ChunkTask(plan.with_chunks([chunk]), chunk.index, task.trace).to_dict()
            )
            for chunk in plan.chunks[start : start + parallel]
        ]
        results.extend(_answer(r, ChunkResult) for r in (yield context.task_all(tasks)))
        if on_batch is not None:
            on_batch(results)
    return results


@bp.orchestration_trigger(context_name="context", orchestration=names.SCORING_WAVE_ORCHESTRATOR)
def scoring_wave_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """One wave of the chunks of a large file: scores what it has not scored yet; returns its counts."""
    summary = yield from _score_wave(context, WaveTask.from_dict(context.get_input()))
    return summary.to_dict()


# --- the run ------------------------------------------------------------------------------------------------


@bp.orchestration_trigger(context_name="context", orchestration=names.SCORING_ORCHESTRATOR)
def scoring_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan -> score -> realign around quoted line breaks -> commit; a failure leaves an error document."""
    run = ScoringRun.from_dict(context.get_input())
    request = replace(run.request, run_id=context.instance_id)
    started = context.current_utc_datetime
    planned: PlannedRun | None = None
    try:
        planned = yield from _plan(context, request, run)
        summaries = yield from _score(context, planned, run, range(planned.ref.waves), "score")
        summaries = yield from _realign(context, planned, run, summaries)
        committed = yield from _commit(context, planned, run, summaries)
    except Exception as err:
        yield from _record_failure(context, planned.plan.request if planned else request, err, run)
        raise
    yield from _discard_waves(context, planned, run)
    context.set_custom_status(
        {"stage": "done", "chunks_done": planned.chunks, "chunks_total": planned.chunks, "rows": committed.rows}
    )
    outcome = ScoringOutcome(
        source=request.source,
        source_etag=planned.plan.request.etag.strip('"'),
        chunks=planned.chunks,
        started=started.isoformat(),
        finished=context.current_utc_datetime.isoformat(),
        commit=committed,
    )
    return outcome.to_dict()


def _plan(
    context: df.DurableOrchestrationContext, request: ScoringRequest, run: ScoringRun
) -> Generator[Any, Any, PlannedRun]:
    context.set_custom_status({"stage": "planning"})
    task = PlanTask(request=request, wave_size=run.wave_size, trace=run.trace)
    planned = yield from _call(context, names.PLAN_SCORING_CHUNKS, task, PlannedRun)
    # Waves report progress only when a whole wave ends: say "scoring" (and how many chunks) before the first.
    context.set_custom_status({"stage": "scoring", "chunks_done": 0, "chunks_total": planned.chunks, "rows": 0})
    return planned


def _score(
    context: df.DurableOrchestrationContext,
    planned: PlannedRun,
    run: ScoringRun,
    waves: Iterable[int],
    label: str,
    quiet: bool = False,
) -> Generator[Any, Any, Summaries]:
    """Score the unscored chunks of `waves`: here when the run has one wave, else one sub-orchestration each (waves
    one after the other: `parallel` bounds a file's chunks in flight). Progress unless `quiet` (a rescoring round
    would make "chunks_done" go backwards)."""
    summaries: Summaries = {}
    for wave in waves:
        task = WaveTask(run=planned.ref, wave=wave, parallel=run.parallel, trace=run.trace)
        if planned.ref.waves == 1:
            on_batch = None if quiet else lambda done: _progress(context, planned, len(done), sum(r.rows for r in done))
            summaries[wave] = yield from _score_wave(context, task, on_batch)
            continue
        child_id = f"{context.instance_id}:{label}:{wave}"
        done = yield context.call_sub_orchestrator(names.SCORING_WAVE_ORCHESTRATOR, task.to_dict(), child_id)
        summaries[wave] = _answer(done, WaveSummary)
        if not quiet:
            counted = summaries.values()
            _progress(context, planned, sum(s.scored for s in counted), sum(s.rows for s in counted))
    return summaries


def _progress(context: df.DurableOrchestrationContext, planned: PlannedRun, done: int, rows: int) -> None:
    context.set_custom_status({"stage": "scoring", "chunks_done": done, "chunks_total": planned.chunks, "rows": rows})


def _realign(
    context: df.DurableOrchestrationContext, planned: PlannedRun, run: ScoringRun, summaries: Summaries
) -> Generator[Any, Any, Summaries]:
    """A chunk boundary fell inside a quoted field with a line break: move those boundaries, score the chunks
    whose ranges changed, keep the others."""
    task = RunTask(run=planned.ref, trace=run.trace)
    for round_ in range(1, MAX_REALIGN_ROUNDS + 1):
        if not any(s.misaligned for s in summaries.values()):
            return summaries
        moved = yield from _call(context, names.REALIGN_SCORING_CHUNKS, task, RealignedWaves)
        rescored = yield from _score(context, planned, run, moved.waves, f"realign{round_}", quiet=True)
        summaries = summaries | rescored
    if any(s.misaligned for s in summaries.values()):
        request = planned.plan.request
        raise ScoringError(
            f"{request.source}: could not align chunk boundaries with CSV rows: a quoted field is not closed (an "
            "odd number of quote characters), so the rows after it cannot be told apart"
        )
    return summaries


def _commit(
    context: df.DurableOrchestrationContext, planned: PlannedRun, run: ScoringRun, summaries: Summaries
) -> Generator[Any, Any, CommitResult]:
    rows = sum(s.rows for s in summaries.values())
    status = {"stage": "committing", "chunks_done": planned.chunks, "chunks_total": planned.chunks, "rows": rows}
    context.set_custom_status(status)
    task = RunTask(run=planned.ref, trace=run.trace)
    for round_ in range(1, MAX_COMMIT_ROUNDS + 1):
        committed = yield from _call(context, names.COMMIT_PREDICTIONS, task, CommitResult)
        if not committed.restage:
            return committed
        # Another run of this output committed first, which discarded the blocks this run had staged (Azure keeps
        # only the blocks a commit lists). Score those chunks again, quietly, and commit again.
        waves = sorted({planned.ref.wave_of(index) for index in committed.restage})
        yield from _score(context, planned, run, waves, f"restage{round_}", quiet=True)
    request = planned.plan.request
    raise ScoringError(
        f"{request.source}: other runs of the same output kept committing while this run committed "
        f"({MAX_COMMIT_ROUNDS} rounds); score the file again (POST /api/scoring with force)"
    )


def _discard_waves(
    context: df.DurableOrchestrationContext, planned: PlannedRun, run: ScoringRun
) -> Generator[Any, Any, None]:
    """The run's wave blobs go once the commit's outcome is in this history (not earlier: a retried commit reads
    them). Best effort: a leftover working blob never fails a committed run."""
    with contextlib.suppress(Exception):  # the predictions are committed; a leftover blob is only clutter
        yield context.call_activity(names.DELETE_SCORING_WAVES, RunTask(run=planned.ref, trace=run.trace).to_dict())


def _record_failure(
    context: df.DurableOrchestrationContext, request: ScoringRequest, err: Exception, run: ScoringRun
) -> Generator[Any, Any, None]:
    """Leave `<errors container>/<name>.error.json` saying why, where the file's owner looks; the run still fails.

    Once, without retries: the activity does its best and never fails the run with an error of its own.
    """
    failed = FailedRun(request=replace(request, run_id=context.instance_id), error=str(err), trace=run.trace)
    try:
        answer = yield context.call_activity(names.RECORD_SCORING_ERROR, failed.to_dict())
        recorded = ErrorDocument.from_dict(answer or {})
    except Exception:  # the run's own error is what the run reports
        recorded = ErrorDocument()
    document = recorded.error_document
    context.set_custom_status({"stage": "failed", "error_document": document} if document else {"stage": "failed"})
