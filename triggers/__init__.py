"""Thin trigger translators: binding -> typed input -> start a fixed orchestration, or a response."""

import azure.durable_functions as df

bp = df.Blueprint()

# Each module registers its functions on `bp` when imported.
from triggers import health, model_http, schedules, scoring, shutdown  # noqa: E402

__all__ = ["bp", "health", "model_http", "schedules", "scoring", "shutdown"]
