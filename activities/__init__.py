"""Thin activity adapters: unpack JSON input -> call shared/ -> return JSON-able output."""

import azure.durable_functions as df

bp = df.Blueprint()

from activities import compute  # noqa: E402

__all__ = ["bp", "compute"]
