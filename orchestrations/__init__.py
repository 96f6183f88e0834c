"""Deterministic orchestrator generators: only context calls, no I/O, no clock, no environment.

Each module holds its own Blueprint `bp`; function_app.py composes them (no `bp` here imported back).
"""
