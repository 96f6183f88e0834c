"""Deterministic orchestrator generators: only context calls, no I/O, no clock, no environment."""

import azure.durable_functions as df

bp = df.Blueprint()

__all__ = ["bp"]
