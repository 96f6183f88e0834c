"""Thin trigger translators: binding -> typed input -> start a fixed orchestration, or a response.

Each module holds its own Blueprint `bp`; function_app.py composes them (no `bp` here imported back).
"""
