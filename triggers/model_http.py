"""`GET /api/weight` and `POST /api/score`: real-time predictions of the model named by MODEL_URI.

Thin: parse (shared.realtime) -> load_model (cached per process) -> predict -> response. numpy and ONNX
Runtime are imported on the first call, not when the app is indexed.
"""

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.errors import AppError, InputError

bp = df.Blueprint()

log = logging.getLogger(__name__)
UNAVAILABLE = "scoring is unavailable: the model or its settings failed to load (see the app's logs)"


def _json(status: int, body: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, mimetype="application/json", headers=headers)


@bp.route(route="weight", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def weight(req: func.HttpRequest) -> func.HttpResponse:
    from shared import realtime
    from shared.model import load_model

    try:
        heights = realtime.parse_weight_query(req.url)
        model = load_model()
        predictions = model.predict({realtime.HEIGHT: heights})
    except InputError as err:
        return _json(realtime.error_status(err), realtime.error_body(str(err), getattr(err, "field", None)))
    except AppError:
        log.exception("GET /api/weight: model failed")
        return _json(500, json.dumps({"error": UNAVAILABLE}))
    return _json(200, realtime.weight_body(predictions), {"X-Model-Version": model.card.label})


@bp.route(route="score", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def score(req: func.HttpRequest) -> func.HttpResponse:
    from shared import realtime, settings
    from shared.model import load_model

    try:
        model = load_model()
        card = model.card
        request = realtime.parse_score_body(
            req.get_body(),
            req.headers.get("content-type"),
            card.feature_names,
            settings.SCORE_MAX_BODY_BYTES.get(),
        )
        predictions = model.predict(request.columns)
    except InputError as err:
        return _json(realtime.error_status(err), realtime.error_body(str(err), getattr(err, "field", None)))
    except AppError:
        log.exception("POST /api/score: model failed")
        return _json(500, json.dumps({"error": UNAVAILABLE}))
    body, mimetype = realtime.score_answer(
        request,
        predictions,
        name=card.name,
        version=card.version,
        prediction_column=card.prediction_column,
        accept=req.headers.get("accept"),
    )
    return func.HttpResponse(body, mimetype=mimetype, headers={"X-Model-Version": card.label})
