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


# What devhost runs besides the triggers: the durable client input and the HTTP response output.
SUPPORTED_BINDINGS = {"durableClient": "IN", "http": "OUT"}


def _load_error(function_name: str, message: str) -> str:
    return f"cannot load the {function_name} function: {message}"  # the worker's FunctionLoadError text


def check_function(name: str, func: Callable[..., Any], bindings: tuple[dict[str, Any], ...]) -> list[str]:
    """The Python worker's checks when it loads a function (`Registry.add_indexed_function` /
    `validate_function_params`), plus the bindings devhost can serve. Returns what is wrong, in the worker's words."""
    problems: list[str] = []
    params = dict(inspect.signature(func).parameters)
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        kinds = ", ".join(f"{b.get('name')} ({b.get('type')})" for b in triggers) or "none"
        problems.append(_load_error(name, f"a function needs exactly one trigger binding; found {kinds}"))
    bound: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        kind, direction = str(binding.get("type", "")), str(binding.get("direction", "")).upper()
        binding_name = str(binding.get("name", ""))
        if direction == "INOUT":
            problems.append(_load_error(name, f'binding {binding_name}: "inout" bindings are not supported'))
        if binding_name == "$return":
            if direction != "OUT":
                problems.append(_load_error(name, '"$return" binding must have direction set to "out"'))
        else:
            bound[binding_name] = binding
        if kind in TRIGGER_TYPES or kind in SUPPORTED_BINDINGS:
            continue
        expected = ", ".join(sorted(TRIGGER_TYPES | set(SUPPORTED_BINDINGS)))
        problems.append(
            _load_error(
                name,
                f"binding {binding_name!r} has type {kind!r} ({direction.lower()}), which devhost does not run; "
                f"devhost runs {expected}",
            )
        )
    if "context" in params and "context" not in bound:
        params.pop("context")
    missing_in_bindings = set(params) - set(bound)
    if missing_in_bindings:
        problems.append(
            _load_error(
                name,
                f"the following parameters are declared in Python but not in function.json: {missing_in_bindings!r}",
            )
        )
    missing_in_python = set(bound) - set(params)
    if missing_in_python:
        problems.append(
            _load_error(
                name,
                f"the following parameters are declared in function.json but not in Python: {missing_in_python!r}",
            )
        )
    return problems


def index_app(app: Any) -> AppIndex:
    """The app's functions, checked as the Python worker checks them: any problem refuses the whole app."""
    try:
        functions = app.get_functions()
    except ValueError as err:  # the library's own checks: missing trigger, duplicate function names
        raise AppLoadError(f"Worker failed to index functions: {type(err).__name__}: {err}") from err
    specs: list[FunctionSpec] = []
    problems: list[str] = []
    for function in functions:
        name = function.get_function_name()
        bindings = tuple(json.loads(function.get_function_json())["bindings"])
        user = function.get_user_function()
        found = check_function(name, user, bindings)
        if found:
            problems.extend(found)
            continue
        trigger = next(b for b in bindings if str(b.get("type", "")).endswith("Trigger"))
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
    if problems:
        raise AppLoadError("Worker failed to index functions:\n  " + "\n  ".join(problems))
    return AppIndex(tuple(specs))
