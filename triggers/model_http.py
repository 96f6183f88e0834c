"""`GET /api/weight` and `POST /api/score`: real-time predictions of the model named by MODEL_URI.

Thin: parse (shared.web.realtime) -> load_model (cached per process) -> predict -> response. numpy and ONNX
Runtime are imported on the first call, not when the app is indexed.
"""

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.errors import AppError
from triggers.http import error_response, json_response

bp = df.Blueprint()

log = logging.getLogger(__name__)
UNAVAILABLE = "scoring is unavailable: the model or its settings failed to load (see the app's logs)"


@bp.route(route="weight", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def weight(req: func.HttpRequest) -> func.HttpResponse:
    from shared.scoring.model import load_model
    from shared.web import realtime

    try:
        heights = realtime.parse_weight_query(req.url)
        model = load_model()
        predictions = model.predict({realtime.HEIGHT: heights})
    except AppError as err:
        return error_response(err, "GET /api/weight")
    return json_response(realtime.weight_body(predictions), headers={"X-Model-Version": model.card.label})


@bp.route(route="score", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def score(req: func.HttpRequest) -> func.HttpResponse:
    from shared import settings
    from shared.scoring.model import load_model
    from shared.web import realtime

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
    except AppError as err:
        return error_response(err, "POST /api/score")
    body, mimetype = realtime.score_answer(
        request,
        predictions,
        name=card.name,
        version=card.version,
        prediction_column=card.prediction_column,
        accept=req.headers.get("accept"),
    )
    return func.HttpResponse(body, mimetype=mimetype, headers={"X-Model-Version": card.label})
