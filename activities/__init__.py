"""Thin activity adapters: unpack JSON input -> call shared/ -> return JSON-able output."""

import azure.durable_functions as df

bp = df.Blueprint()

# Each module registers its functions on `bp` when imported.
from activities import compute, schedules, scoring  # noqa: E402

__all__ = ["bp", "compute", "schedules", "scoring"]
