"""What every HTTP function answers: JSON with its content type set in one place, and errors mapped in one place
(shared.web.answers), so no function can forget either or word them its own way.

A helper of the trigger modules, not a function module: it holds no Blueprint and registers nothing.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.errors import AppError

log = logging.getLogger(__name__)


def json_response(
    body: object, status: int = 200, *, headers: dict[str, str] | None = None, indent: int | None = None
) -> func.HttpResponse:
    """`body` as an `application/json` answer; `str` or `bytes` are taken as JSON already serialized
    (shared.web.realtime builds its own, with its float formatting; a saved report is served as stored), anything
    else is serialized here."""
    text = body if isinstance(body, str | bytes) else json.dumps(body, indent=indent)
    return func.HttpResponse(text, status_code=status, mimetype="application/json", headers=headers)


def error_response(err: AppError, request: str, *, text: bool = False) -> func.HttpResponse:
    """The answer to `err` raised while serving `request` (e.g. "POST /api/shutdown"): the ErrorBody as JSON, or
    its message as plain text for pages read in a browser (the dashboard). The operator's errors are logged."""
    from shared.web.answers import error_answer

    answer = error_answer(err)
    if answer.operators:  # the caller is told where to look; the log says what happened, with the cause
        log.error("%s failed: %s", request, err, exc_info=err)
    if text:
        return func.HttpResponse(
            answer.body["error"], status_code=answer.status, mimetype="text/plain", charset="utf-8"
        )
    return json_response(answer.body, answer.status)
