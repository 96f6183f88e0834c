"""Thin trigger translators: binding -> typed input -> start a fixed orchestration, or a response."""

import azure.durable_functions as df

bp = df.Blueprint()

# Each module registers its functions on `bp` when imported.
from triggers import (  # noqa: E402
    health,
    model_http,
    shutdown,
)

__all__ = ["bp", "health", "model_http", "shutdown"]
