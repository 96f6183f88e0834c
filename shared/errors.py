"""The app's error hierarchy: messages quote the offending value and say what was expected."""


class AppError(Exception):
    """Base of every error the app raises on purpose."""


class SettingsError(AppError):
    """A setting is missing, malformed, or a reference to it cannot be resolved."""


class InputError(AppError):
    """A caller's input (HTTP body, event, CSV) is not what was expected."""


class RequestFieldError(InputError):
    """One field of a request body is wrong; `field` names it (JSON-path-like, e.g. `workspaces[1]`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name

    def to_dict(self) -> dict[str, str]:
        """The 400 answer's body (the OpenAPI document's ErrorBody)."""
        return {"error": str(self), "field": self.field}


class PayloadTooLargeError(InputError):
    """A request body is larger than the endpoint takes (answered 413)."""


class NotFoundError(AppError):
    """Something the caller named does not exist."""


class ModelError(AppError):
    """A model artifact is missing, inconsistent or cannot be loaded."""


class ComputeError(AppError):
    """An Azure ML compute operation failed."""


class ScoringError(AppError):
    """A scoring run cannot complete (bad input beyond the error threshold, missing columns, ...)."""


class StorageError(AppError):
    """Blob storage refused or failed an operation; the message names the blob and the service's error code."""


class OutputChangedError(StorageError):
    """A conditional commit lost a race: another run committed the blob since this run looked at it."""


class BlocksLostError(StorageError):
    """Staged blocks of this run are gone: another run's commit of the same blob discarded them."""


class SourceChangedError(ScoringError):
    """The input blob was deleted or replaced while a run was scoring it."""
