"""Thin activity adapters: unpack JSON input -> call shared/ -> return JSON-able output."""

import azure.durable_functions as df

bp = df.Blueprint()

__all__ = ["bp"]
