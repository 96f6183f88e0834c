"""The one mapping from the app's errors to HTTP answers, for every trigger: status code and ErrorBody.

Bad input is the caller's to fix and says exactly what (400, 413); something named that does not exist is 404;
the app's own configuration or a service behind it failing is the operator's (500, 502), and the answer then says
where to look without echoing settings. Errors that are not the app's (bugs) are not mapped: the host answers
500 and logs the traceback, as it should.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import (
    AppError,
    InputError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    SettingsError,
    StorageError,
)

SETTINGS_BROKEN = "the app's settings are incomplete or malformed; see the app's log"
MODEL_UNAVAILABLE = "scoring is unavailable: the model or its settings failed to load (see the app's logs)"


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: dict[str, str]  # the OpenAPI document's ErrorBody: {"error", "field"?}

    @property
    def operators(self) -> bool:
        """Whether this is the operator's problem (log it as an error), not the caller's."""
        return self.status >= 500


def error_answer(err: AppError) -> ErrorAnswer:
    if isinstance(err, InputError):
        field = getattr(err, "field", None)
        body = {"error": str(err)} if field is None else {"error": str(err), "field": str(field)}
        return ErrorAnswer(413 if isinstance(err, PayloadTooLargeError) else 400, body)
    if isinstance(err, NotFoundError):
        return ErrorAnswer(404, {"error": str(err)})
    if isinstance(err, SettingsError):
        return ErrorAnswer(500, {"error": SETTINGS_BROKEN})
    if isinstance(err, ModelError):
        return ErrorAnswer(500, {"error": MODEL_UNAVAILABLE})
    if isinstance(err, StorageError):  # names the blob and the service's error code, never a key or a URL
        return ErrorAnswer(502, {"error": str(err)})
    return ErrorAnswer(500, {"error": f"the request failed: {type(err).__name__}; see the app's log"})
