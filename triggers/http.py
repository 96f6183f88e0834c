"""The JSON answer every HTTP function gives: one place sets the content type, so no function can forget it.

A helper of the trigger modules, not a function module: it holds no Blueprint and registers nothing.
"""

from __future__ import annotations

import json

import azure.functions as func


def json_response(
    body: object, status: int = 200, *, headers: dict[str, str] | None = None, indent: int | None = None
) -> func.HttpResponse:
    """`body` as an `application/json` answer; a `str` is taken as JSON text already serialized (shared.scoring.realtime
    builds its own, with its float formatting), anything else is serialized here."""
    text = body if isinstance(body, str) else json.dumps(body, indent=indent)
    return func.HttpResponse(text, status_code=status, mimetype="application/json", headers=headers)
