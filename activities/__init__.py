"""Thin activity adapters: unpack JSON input -> call shared/ -> return JSON-able output.

Each module holds its own Blueprint `bp`; function_app.py composes them (no `bp` here imported back).
"""
