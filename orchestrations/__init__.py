"""Deterministic orchestrator generators: only context calls, no I/O, no clock, no environment."""

import azure.durable_functions as df

bp = df.Blueprint()

from orchestrations import shutdown  # noqa: E402

__all__ = ["bp", "shutdown"]
