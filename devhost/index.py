"""Indexes the app's functions from its own metadata (`app.get_functions()`), as the Functions host does."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRIGGER_TYPES = {"httpTrigger", "timerTrigger", "eventGridTrigger", "orchestrationTrigger", "activityTrigger"}


class AppLoadError(Exception):
    """The app could not be imported or indexed; the message says what to fix."""


@dataclass(frozen=True)
class Route:
    """An HTTP route template (`orders/{id:int}/{part?}`) compiled to a matcher."""

    template: str
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, template: str) -> Route:
        regex = ""
        for segment in [s for s in template.strip("/").split("/") if s]:
            match = re.fullmatch(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}", segment)
            if match is None:
                if "{" in segment:
                    raise AppLoadError(f"route template {template!r}: segment {segment!r} is not supported")
                regex += "/" + re.escape(segment)
                continue
            catch_all, name, optional = match.groups()
            body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
            regex += f"(?:/{body})?" if (optional or catch_all) else f"/{body}"
        return cls(template, re.compile(f"^{regex}/?$", re.IGNORECASE))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path if path.startswith("/") else "/" + path)
        if found is None:
            return None
        return {k: v for k, v in found.groupdict().items() if v is not None}


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the app: its trigger binding, other bindings, and the callable to invoke."""

    name: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    func: Callable[..., Any]
    parameters: tuple[str, ...]
    is_async: bool
    route: Route | None = None
    methods: frozenset[str] = field(default_factory=frozenset)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def auth_level(self) -> str:
        return str(self.trigger.get("authLevel", "FUNCTION")).lower()

    @property
    def orchestrator_function(self) -> Callable[..., Any]:
        inner = getattr(self.func, "orchestrator_function", None)
        if inner is None:
            raise AppLoadError(f"orchestrator {self.name} has no generator function")
        return inner  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AppIndex:
    functions: tuple[FunctionSpec, ...]

    def by_type(self, kind: str) -> list[FunctionSpec]:
        return [f for f in self.functions if f.trigger_type == kind]

    def get(self, name: str) -> FunctionSpec | None:
        return next((f for f in self.functions if f.name.lower() == name.lower()), None)


def load_app(script_root: Path, module: str = "function_app") -> Any:
    """Imports `function_app` from the script root and returns its `app` object."""
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        mod = importlib.import_module(module)
    except Exception as err:
        raise AppLoadError(f"importing {module} from {root} failed: {type(err).__name__}: {err}") from err
    app = getattr(mod, "app", None)
    if app is None or not hasattr(app, "get_functions"):
        raise AppLoadError(f"{module}.py in {root} defines no `app` (azure.functions.FunctionApp)")
    return app


def index_app(app: Any) -> AppIndex:
    specs: list[FunctionSpec] = []
    for function in app.get_functions():
        name = function.get_function_name()
        bindings = tuple(json.loads(function.get_function_json())["bindings"])
        triggers = [b for b in bindings if b.get("type") in TRIGGER_TYPES or str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise AppLoadError(f"function {name} must have exactly one trigger, found {len(triggers)}")
        trigger = triggers[0]
        user = function.get_user_function()
        params = tuple(inspect.signature(user).parameters)
        route = None
        methods: frozenset[str] = frozenset()
        if trigger["type"] == "httpTrigger":
            route = Route.compile(str(trigger.get("route") or name))
            methods = frozenset(m.upper() for m in trigger.get("methods") or [])
        specs.append(
            FunctionSpec(
                name=name,
                trigger=trigger,
                bindings=bindings,
                func=user,
                parameters=params,
                is_async=inspect.iscoroutinefunction(user),
                route=route,
                methods=methods,
            )
        )
    return AppIndex(tuple(specs))
