"""Starts the loopback stand-ins a settings file asks for and points the app's settings at them."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any


def start_standins(env: MutableMapping[str, str], state_dir: Path) -> list[Any]:
    """Nothing yet: filled in as the ARM, identity and Key Vault stand-ins land."""
    return []
