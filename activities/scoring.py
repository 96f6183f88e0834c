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
        try:
            return activity(payload)
        except _DOMAIN_ERRORS as err:
            return {"error": str(err), "error_type": type(err).__name__}

    return run


def _model_args() -> dict[str, Any]:
    from shared.scoring.model import load_model

    model = load_model()
    card = model.card
    return {"model": model, "features": card.feature_names, "label": f"{card.name} v{card.version}"}


@bp.activity_trigger(input_name="payload", activity=names.PLAN_SCORING_CHUNKS)
@_domain_outcome
def plan_scoring_chunks(payload: dict[str, Any]) -> dict[str, Any]:
    """{"request"} -> the plan; {"plan", "results"} -> the plan realigned around quoted line breaks."""
    from shared import settings
    from shared.scoring import chunk_scoring
    from shared.scoring.payloads import ChunkPlan, ChunkResult, ScoringRequest
    from shared.telemetry import carrier_span

    with carrier_span(names.PLAN_SCORING_CHUNKS, payload.get("trace"), {"instance_id": payload.get("run_id")}):
        if "plan" in payload:
            plan = ChunkPlan.from_dict(payload["plan"])
            results = [ChunkResult.from_dict(r) for r in payload["results"]]
            return chunk_scoring.realign_plan(plan, results).to_dict()
        model = _model_args()
        scoring = settings.ScoringSettings.from_env()
        request = ScoringRequest.from_dict(payload["request"])
        plan = chunk_scoring.plan_scoring(
            request,
            chunk_bytes=scoring.chunk_bytes,
            output_container=scoring.output_container,
            errors_container=scoring.errors_container,
            features=model["features"],
            model_label=model["label"],
        )
        card = model["model"].card
        return replace(plan, model_name=card.name, model_version=card.version).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.SCORE_CHUNK)
@_domain_outcome
def score_chunk(payload: dict[str, Any]) -> dict[str, Any]:
    """{"plan" (holding this chunk), "index"} -> the chunk's result (counts and block id, never data)."""
    from shared.scoring import chunk_scoring
    from shared.scoring.payloads import ChunkPlan
    from shared.telemetry import carrier_span

    plan = ChunkPlan.from_dict(payload["plan"])
    attributes: dict[str, str | int] = {
        "instance_id": plan.request.run_id,
        "blob": plan.request.source,
        "chunk": int(payload["index"]),
    }
    with carrier_span(names.SCORE_CHUNK, payload.get("trace"), attributes):
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
            int(payload["index"]),
            features=model["features"],
            prediction_column=model["model"].card.prediction_column,
            predict=model["model"].predict,
            model_label=model["label"],
        )
        return result.to_dict()


@bp.activity_trigger(input_name="payload", activity=names.COMMIT_PREDICTIONS)
@_domain_outcome
def commit_predictions(payload: dict[str, Any]) -> dict[str, Any]:
    """{"plan", "results"} -> where the predictions went; raises when bad rows exceed the threshold."""
    from shared import settings
    from shared.scoring import commit as scoring_commit
    from shared.scoring.payloads import ChunkPlan, ChunkResult
    from shared.telemetry import carrier_span

    plan = ChunkPlan.from_dict(payload["plan"])
    with carrier_span(
        names.COMMIT_PREDICTIONS,
        payload.get("trace"),
        {"instance_id": plan.request.run_id, "blob": plan.request.source},
    ):
        result = scoring_commit.commit_predictions(
            plan,
            [ChunkResult.from_dict(r) for r in payload["results"]],
            model_name=plan.model_name,
            model_version=plan.model_version,
            error_threshold=settings.SCORING_ERROR_THRESHOLD.get(),
        )
        return result.to_dict()


@bp.activity_trigger(input_name="payload", activity=names.RECORD_SCORING_ERROR)
def record_scoring_error(payload: dict[str, Any]) -> dict[str, Any]:
    """{"request", "error"} of a failed run -> {"error_document": "container/name"}, "" when none was written.

    Best effort: the run fails with its own error either way, so a problem here is logged, not raised.
    """
    from shared import settings
    from shared.errors import AppError
    from shared.scoring import error_document as scoring_errors
    from shared.scoring.payloads import ScoringRequest
    from shared.telemetry import carrier_span

    request = ScoringRequest.from_dict(payload["request"])
    with carrier_span(
        names.RECORD_SCORING_ERROR, payload.get("trace"), {"instance_id": request.run_id, "blob": request.source}
    ):
        try:
            try:
                model = _model_args()
                expected = scoring_errors.expected_input(model["features"], model["label"])
            except ModelError as err:
                expected = f"a CSV file the model can score (the model cannot be loaded: {err})"
            written = scoring_errors.write_error_document(
                request,
                str(payload["error"]),
                container=settings.SCORING_ERRORS_CONTAINER.get(),
                expected=expected,
            )
        except AppError as err:
            log.warning("%s: no error document for run %s: %s", request.source, request.run_id, err)
            written = ""
        return {"error_document": written}
