"""Indexes the app's functions from its own metadata (`app.get_functions()`), as the Functions host does."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRIGGER_TYPES = {
    "httpTrigger",
    "timerTrigger",
    "eventGridTrigger",
    "orchestrationTrigger",
    "activityTrigger",
    "entityTrigger",
}
# The trigger property naming a Durable function's registered name (the Durable extension's binding providers:
# "Priority for getting the name is [OrchestrationTrigger], [FunctionName], method name"; same for activities and
# entities).
DURABLE_NAME_PROPERTY = {
    "orchestrationTrigger": "orchestration",
    "activityTrigger": "activity",
    "entityTrigger": "entityName",
}
# The Python worker's app setting naming the script it indexes (azure_functions_worker/loader.py).
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"
DEFAULT_SCRIPT_FILE = "function_app.py"


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
        # DOTALL and \Z: a parameter may hold a decoded line break, as in the Functions host's routing.
        return cls(template, re.compile(f"^{regex}/?\\Z", re.IGNORECASE | re.DOTALL))

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
    def registered_name(self) -> str:
        """The name the Durable extension knows this function by: the trigger's own name, else the function's."""
        property_name = DURABLE_NAME_PROPERTY.get(self.trigger_type)
        given = self.trigger.get(property_name) if property_name else None
        return str(given) if given else self.name

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

    def durable(self, kind: str, name: str) -> FunctionSpec | None:
        """The Durable function of trigger type `kind` registered as `name` (case-insensitive, as the extension's
        FunctionName compares)."""
        wanted = name.lower()
        return next((f for f in self.by_type(kind) if f.registered_name.lower() == wanted), None)


def script_file(script_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The script the Python worker would index in `script_root`, checked to exist.

    Refuses what the worker would not run as a v2 app: a missing folder, a v1-model app (function.json files, no
    function_app.py) and a folder with no script at all. devhost imports nothing from anywhere else: without this,
    `import function_app` would find whatever function_app.py is on sys.path (devhost's own repository).
    """
    env = os.environ if environ is None else environ
    name = env.get(SCRIPT_FILE_SETTING, "").strip() or DEFAULT_SCRIPT_FILE
    if not script_root.exists():
        raise AppLoadError(f"--script-root {script_root} does not exist; give the folder holding {name}")
    if not script_root.is_dir():
        raise AppLoadError(f"--script-root {script_root} is a file; give the folder holding {name}")
    script = script_root / name
    if script.is_file():
        return script
    v1 = sorted(str(p.relative_to(script_root)) for p in script_root.glob("*/function.json"))
    if v1:
        shown = ", ".join(v1[:3]) + (", ..." if len(v1) > 3 else "")
        raise AppLoadError(
            f"{script_root} holds a v1 programming model app ({shown}) and no {name}: devhost runs v2 model apps "
            "only (a function_app.py whose FunctionApp declares the functions with decorators); migrate it "
            "(https://learn.microsoft.com/azure/azure-functions/functions-reference-python) or run it with Core Tools"
        )
    raise AppLoadError(
        f"{script_root} has no {name}: give --script-root the folder holding the app's {name} and host.json"
        + (f" (or set {SCRIPT_FILE_SETTING})" if name == DEFAULT_SCRIPT_FILE else f" ({SCRIPT_FILE_SETTING}={name})")
    )


def load_app(script_root: Path) -> Any:
    """Imports the app's script from the script root and returns its one top-level FunctionApp, whatever its name.

    As the Python worker's `index_function_app` (azure_functions_worker/loader.py) does: every top-level object that
    is an `azure.functions.FunctionRegister` (FunctionApp, DFApp, ...) counts, exactly one must exist; blueprints
    count only once registered in it.
    """
    script = script_file(script_root)
    root = str(script.parent.resolve())
    module = script.stem
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        mod = importlib.import_module(module)
    except Exception as err:
        raise AppLoadError(f"importing {module} from {root} failed: {type(err).__name__}: {err}") from err
    found = Path(getattr(mod, "__file__", "") or "").resolve()
    if found != script.resolve():
        raise AppLoadError(f"importing {module} found {found}, not {script}: rename the app's script or that module")
    from azure.functions import FunctionRegister

    apps = [(name, value) for name, value in vars(mod).items() if isinstance(value, FunctionRegister)]
    if not apps:
        raise AppLoadError(
            f"Worker failed to index functions: Could not find top level function app instances in {script.name} "
            "(define one, e.g. `app = func.FunctionApp()` or `myApp = df.DFApp()`)"
        )
    if len(apps) > 1:
        names = ", ".join(f"{name} ({type(value).__name__})" for name, value in apps)
        raise AppLoadError(
            f"Worker failed to index functions: More than one {type(apps[0][1]).__name__} or other top level "
            f"function app instances are defined in {script.name}: {names}"
        )
    return apps[0][1]


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
    problems.extend(_durable_name_problems(specs))
    if problems:
        raise AppLoadError("Worker failed to index functions:\n  " + "\n  ".join(problems))
    return AppIndex(tuple(specs))


def _durable_name_problems(specs: list[FunctionSpec]) -> list[str]:
    """Registered Durable names the extension would refuse: one name for two functions of a kind (its registries are
    keyed by name, case-insensitively), and orchestration names starting with '@' (reserved for entities)."""
    problems: list[str] = []
    for kind in DURABLE_NAME_PROPERTY:
        seen: dict[str, str] = {}
        for spec in (s for s in specs if s.trigger_type == kind):
            key = spec.registered_name.lower()
            if key in seen:
                problems.append(
                    f"functions {seen[key]} and {spec.name} are both registered as {kind} {spec.registered_name!r}; "
                    "give one of them another name"
                )
            seen[key] = spec.name
            if kind == "orchestrationTrigger" and key.startswith("@"):
                problems.append(f"cannot load the {spec.name} function: Orchestration names must not start with @.")
    return problems
