"""Deterministic orchestrator generators: only context calls, no I/O, no clock, no environment."""

import azure.durable_functions as df

bp = df.Blueprint()

# Each module registers its functions on `bp` when imported.
from orchestrations import reconcile, scoring, shutdown  # noqa: E402

__all__ = ["bp", "reconcile", "scoring", "shutdown"]
