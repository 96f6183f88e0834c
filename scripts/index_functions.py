"""Indexes the functions of a deployment package the way the Azure Functions Python worker does, in an interpreter
that sees nothing but the package.

    python3 -I -S -B scripts/index_functions.py PACKAGE_DIR

Run it with `-I -S` (isolated mode, no site-packages): the only import paths are then the package directory, its
`.python_packages/lib/site-packages` (where the platform finds the dependencies) and the standard library, so a
dependency missing from the package fails here as it would in Azure, instead of being found in a developer's
virtual environment. It must be the interpreter the app runs on (CPython 3.11, x86-64 Linux): the package holds
that platform's wheels.

It mirrors the worker (azure-functions-python-worker, `loader.index_function_app` and
`functions.Registry.add_indexed_function`): import `function_app`, take its one top-level `FunctionRegister`
(the `FunctionApp`/`DFApp` object, whatever its variable name), call `get_functions()`, and check each function's
bindings against the parameters of its Python function. It prints the function names, one a line, and exits 0;
on any problem it prints what is wrong (naming the function) on stderr and exits 1. Standard library only.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import sysconfig
from pathlib import Path
from typing import Any

SITE_PACKAGES = Path(".python_packages") / "lib" / "site-packages"


class PackageIndexError(Exception):
    """The package does not index; the message says which function and why."""


def _isolate(package: Path) -> None:
    if sys.flags.no_site == 0 or sys.flags.isolated == 0:
        raise PackageIndexError("run with `python3 -I -S`: otherwise the interpreter's own site-packages leak in")
    sys.path[:0] = [str(package), str(package / SITE_PACKAGES)]


def _outside_modules(package: Path) -> list[str]:
    """Modules loaded from anywhere but the package and the standard library (there should be none)."""
    allowed = [package.resolve(), *(Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib"))]
    outside = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and name != "__main__" and not any(Path(file).resolve().is_relative_to(root) for root in allowed):
            outside.append(f"{name} ({file})")
    return sorted(outside)


def _the_app(module: Any) -> Any:
    from azure.functions import FunctionRegister

    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if len(apps) != 1:
        raise PackageIndexError(f"function_app.py must define exactly one top-level FunctionApp, found {len(apps)}")
    return apps[0]


def _check(name: str, user_function: Any, bindings: list[dict[str, Any]]) -> list[str]:
    """The worker's FunctionLoadError checks: every binding but $return is a parameter and vice versa."""
    problems = []
    if not callable(user_function):
        return [f"{name}: the registered function is not callable"]
    params = dict(inspect.signature(user_function).parameters)
    bound = {str(b.get("name")) for b in bindings if b.get("name") != "$return"}
    if "context" in params and "context" not in bound:
        params.pop("context")  # the worker passes its invocation context here
    if missing := set(params) - bound:
        problems.append(f"{name}: parameters declared in Python but not as bindings: {sorted(missing)}")
    if missing := bound - set(params):
        problems.append(f"{name}: bindings with no Python parameter: {sorted(missing)}")
    if not any(str(b.get("type", "")).endswith("Trigger") for b in bindings):
        problems.append(f"{name}: no trigger binding")
    return problems


def index(package: Path) -> list[str]:
    """Names of the functions the package indexes; raises PackageIndexError naming every problem."""
    _isolate(package)
    try:
        module = importlib.import_module("function_app")
    except Exception as err:
        raise PackageIndexError(f"importing function_app failed: {type(err).__name__}: {err}") from err
    try:
        functions = _the_app(module).get_functions()
    except ValueError as err:  # the library's own checks: a function without trigger, duplicate names
        raise PackageIndexError(f"get_functions() failed: {err}") from err
    names: list[str] = []
    problems: list[str] = []
    for function in functions:
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        problems += _check(name, function.get_user_function(), bindings)
        names.append(name)
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"function names used twice: {duplicates}")
    if outside := _outside_modules(package):
        problems.append(f"modules loaded from outside the package: {outside}")
    if problems:
        raise PackageIndexError("\n".join(problems))
    return sorted(names)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not (Path(argv[1]) / "function_app.py").is_file():
        print(f"usage: python3 -I -S -B {argv[0]} PACKAGE_DIR (a directory holding function_app.py)", file=sys.stderr)
        return 2
    try:
        names = index(Path(argv[1]).resolve())
    except PackageIndexError as err:
        print(f"index_functions: the package does not index:\n{err}", file=sys.stderr)
        return 1
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
