"""Scoring activities: plan byte-range chunks, score one chunk, commit the predictions CSV, record a failed run."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.errors import InputError, ModelError, NotFoundError, ScoringError
from shared.scoring import chunk_slots

bp = df.Blueprint()

log = logging.getLogger(__name__)

# Before the worker starts its activity threads: they then share two allocator arenas, so a chunk reuses the memory
# earlier chunks freed on other threads (worker memory under bursts; see shared/scoring/chunk_slots.py).
chunk_slots.limit_arenas()

# Failures that the same input will always reproduce: reported to the orchestrator as a value instead of
# raised, so they are not retried and the run fails with exactly this message.
_DOMAIN_ERRORS = (ScoringError, InputError, ModelError, NotFoundError)


def _domain_outcome(activity: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    @functools.wraps(activity)
    def run(payload: dict[str, Any]) -> dict[str, Any]:
        from shared.scoring.payloads import ActivityRefusal

        try:
            return activity(payload)
        except _DOMAIN_ERRORS as err:
            return ActivityRefusal(error=str(err), error_type=type(err).__name__).to_dict()

    return run


def _model_args() -> dict[str, Any]:
    from shared.scoring.model import load_model

    model = load_model()
    card = model.card
    return {"model": model, "features": card.feature_names, "label": f"{card.name} v{card.version}"}


@bp.activity_trigger(input_name="payload", activity=names.PLAN_SCORING_CHUNKS)
@_domain_outcome
def plan_scoring_chunks(payload: dict[str, Any]) -> dict[str, Any]:
    """PlanTask -> PlannedRun: the chunks planned and kept in the run's wave blobs, the plan without them."""
    from shared import settings
    from shared.scoring import chunk_scoring, waves
    from shared.scoring.payloads import PlanTask
    from shared.telemetry import carrier_span

    task = PlanTask.from_dict(payload)
    with carrier_span(names.PLAN_SCORING_CHUNKS, task.trace, {"instance_id": task.request.run_id}):
        model = _model_args()
        scoring = settings.ScoringSettings.from_env()
        plan = chunk_scoring.plan_scoring(
            task.request,
            chunk_bytes=scoring.chunk_bytes,
            output_container=scoring.output_container,
            errors_container=scoring.errors_container,
            features=model["features"],
            model_label=model["label"],
        )
        card = model["model"].card
        planned = replace(plan, model_name=card.name, model_version=card.version)
        return waves.save_plan(planned, task.wave_size).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.REALIGN_SCORING_CHUNKS)
@_domain_outcome
def realign_scoring_chunks(payload: dict[str, Any]) -> dict[str, Any]:
    """RunTask -> RealignedWaves: boundaries inside quoted fields moved to row starts; the waves to score again."""
    from shared.scoring import waves
    from shared.scoring.payloads import RealignedWaves, RunTask
    from shared.telemetry import carrier_span

    task = RunTask.from_dict(payload)
    with carrier_span(names.REALIGN_SCORING_CHUNKS, task.trace, {"instance_id": task.run.run_id}):
        return RealignedWaves(waves=tuple(waves.realign_run(task.run))).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.LOAD_SCORING_WAVE)
@_domain_outcome
def load_scoring_wave(payload: dict[str, Any]) -> dict[str, Any]:
    """WaveTask -> ChunkPlan holding the wave's chunks that have no current result."""
    from shared.scoring import waves
    from shared.scoring.payloads import WaveTask

    task = WaveTask.from_dict(payload)
    return waves.unscored_plan(task.run, task.wave).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.SCORE_CHUNK)
@_domain_outcome
def score_chunk(payload: dict[str, Any]) -> dict[str, Any]:
    """ChunkTask (a plan holding this chunk) -> the chunk's ChunkResult (counts and block id, never data)."""
    from shared.scoring import chunk_scoring
    from shared.scoring.payloads import ChunkTask
    from shared.telemetry import carrier_span

    task = ChunkTask.from_dict(payload)
    plan = task.plan
    attributes: dict[str, str | int] = {
        "instance_id": plan.request.run_id,
        "blob": plan.request.source,
        "chunk": task.index,
    }
    with carrier_span(names.SCORE_CHUNK, task.trace, attributes):
        model = _model_args()
        version = model["model"].card.version
        if plan.model_version and version != plan.model_version:
            # MODEL_URI changed while the run was going (a deployment): one output must come from one model.
            raise ScoringError(
                f"{plan.request.source}: the run was planned with model {plan.model_name} v{plan.model_version} "
                f"but this worker has {model['label']}; score the file again (POST /api/scoring with force)"
            )
        result = chunk_scoring.score_chunk(
            plan,
            task.index,
            features=model["features"],
            prediction_column=model["model"].card.prediction_column,
            predict=model["model"].predict,
            model_label=model["label"],
        )
        return result.to_dict()


@bp.activity_trigger(input_name="payload", activity=names.SAVE_SCORING_WAVE)
@_domain_outcome
def save_scoring_wave(payload: dict[str, Any]) -> dict[str, Any]:
    """WaveResults -> WaveSummary: the chunks' results kept in the wave's blob, the wave counted."""
    from shared.scoring import waves
    from shared.scoring.payloads import WaveResults

    task = WaveResults.from_dict(payload)
    return waves.record_results(task.run, task.wave, task.results).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.COMMIT_PREDICTIONS)
@_domain_outcome
def commit_predictions(payload: dict[str, Any]) -> dict[str, Any]:
    """RunTask -> CommitResult: where the predictions went (or which chunks to score first); raises when bad rows
    exceed the threshold."""
    from shared import settings
    from shared.scoring import waves
    from shared.scoring.payloads import RunTask
    from shared.telemetry import carrier_span

    task = RunTask.from_dict(payload)
    plan = waves.load_plan(task.run)
    with carrier_span(
        names.COMMIT_PREDICTIONS, task.trace, {"instance_id": plan.request.run_id, "blob": plan.request.source}
    ):
        result = waves.commit_run(task.run, error_threshold=settings.SCORING_ERROR_THRESHOLD.get(), plan=plan)
        return result.to_dict()


@bp.activity_trigger(input_name="payload", activity=names.DELETE_SCORING_WAVES)
def delete_scoring_waves(payload: dict[str, Any]) -> dict[str, Any]:
    """RunTask -> {"deleted": n}: the run's plan and wave blobs, no longer needed once its commit's outcome is
    known."""
    from shared.scoring import waves
    from shared.scoring.payloads import RunTask

    return {"deleted": waves.delete_waves(RunTask.from_dict(payload).run)}


@bp.activity_trigger(input_name="payload", activity=names.RECORD_SCORING_ERROR)
def record_scoring_error(payload: dict[str, Any]) -> dict[str, Any]:
    """FailedRun -> ErrorDocument ("" when none was written); the run's working blobs are deleted.

    Best effort: the run fails with its own error either way, so a problem here is logged, not raised.
    """
    from shared import settings
    from shared.errors import AppError
    from shared.scoring import error_document as scoring_errors
    from shared.scoring import waves
    from shared.scoring.payloads import ErrorDocument, FailedRun
    from shared.telemetry import carrier_span

    failed = FailedRun.from_dict(payload)
    request = failed.request
    with carrier_span(
        names.RECORD_SCORING_ERROR, failed.trace, {"instance_id": request.run_id, "blob": request.source}
    ):
        container = settings.SCORING_ERRORS_CONTAINER.get()
        try:
            try:
                model = _model_args()
                expected = scoring_errors.expected_input(model["features"], model["label"])
            except ModelError as err:
                expected = f"a CSV file the model can score (the model cannot be loaded: {err})"
            written = scoring_errors.write_error_document(request, failed.error, container=container, expected=expected)
            waves.delete_run(container, request.name, request)
        except AppError as err:
            log.warning("%s: no error document for run %s: %s", request.source, request.run_id, err)
            written = ""
        return ErrorDocument(error_document=written).to_dict()
