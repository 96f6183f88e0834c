"""What devhost asks of the app it runs, handed in at start instead of imported: devhost knows no app layout.

`DEVHOST_APP_HOOKS=module:function` names a function devhost calls in the host and in every worker process after
importing function_app; it returns an `AppHooks`. Every hook is optional:

- `resolve_setting_reference(name, value, environ) -> str`: the secret a `@Microsoft.KeyVault(...)` setting points
  to. In Azure, App Service resolves these before the host reads `%SETTING%` in a timer schedule; devhost
  emulates the platform through this hook.
- `configure_telemetry(span_processor)`: set up the app's tracing with one more span processor added (how
  DEVHOST_SPAN_FILE collects every process's spans).
- `error_types`: the app's own configuration errors (e.g. a reference that names no secret), which disable just the
  timer that needs the setting, as the host does, instead of stopping devhost.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devhost.config import ConfigError
from devhost.settings import DEVHOST_APP_HOOKS


@dataclass(frozen=True)
class AppHooks:
    resolve_setting_reference: Callable[[str, str, Mapping[str, str]], str] | None = None
    configure_telemetry: Callable[[Any], object] | None = None
    error_types: tuple[type[Exception], ...] = ()


def load_app_hooks(env: Mapping[str, str] | None = None) -> AppHooks:
    """The hooks DEVHOST_APP_HOOKS names (none when it is unset); call after function_app is imported."""
    reference = DEVHOST_APP_HOOKS.get(env)
    if not reference:
        return AppHooks()
    module_name, function_name = (part.strip() for part in reference.split(":"))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"DEVHOST_APP_HOOKS={reference!r}: cannot import {module_name}: {err}") from err
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ConfigError(f"DEVHOST_APP_HOOKS={reference!r}: {module_name} has no function {function_name}")
    hooks = factory()
    if not isinstance(hooks, AppHooks):
        raise ConfigError(
            f"DEVHOST_APP_HOOKS={reference!r} returned {type(hooks).__name__}; expected devhost.hooks.AppHooks"
        )
    return hooks
