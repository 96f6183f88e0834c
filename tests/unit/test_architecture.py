"""The layering of docs/architecture.md, checked on the source: who imports whom, and no import cycles.

Imports are read with `ast` from every module of the app and of devhost, at any depth (a lazy import inside a
function closes a cycle as surely as one at the top), so this needs no import of the app itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "triggers", "orchestrations", "activities", "devhost", "training")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    modules = {"function_app": ROOT / "function_app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[_module_name(path)] = path
    return modules


MODULES = _sources()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (`from pkg import mod` counts as importing pkg.mod when it is one)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_app_or_devhost():
    assert _cycles(GRAPH) == []


def test_the_settings_never_import_the_key_vault_resolver():
    assert "shared.keyvault" not in GRAPH["shared.settings"]


# shared/ by job: the platform modules at its top level, then one package per job and one for the HTTP surface.
# Who may import whom inside shared/ (a package's own modules always may):
SHARED_PACKAGES = ("shared.compute", "shared.scoring", "shared.web")
SHARED_MAY_IMPORT: dict[str, set[str]] = {
    "platform": {"platform"},
    "shared.compute": {"platform"},
    "shared.scoring": {"platform"},
    "shared.web": {"platform", "shared.compute", "shared.scoring"},
}
MAX_SHARED_TOP_LEVEL_MODULES = 12


def _shared_part(module: str) -> str | None:
    """The package of a shared module ("platform" for the top level), None outside shared/."""
    if module != "shared" and not module.startswith("shared."):
        return None
    for package in SHARED_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return "platform"


def _rule_violations(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every import inside shared/ that SHARED_MAY_IMPORT does not allow (no exceptions)."""
    wrong = []
    for name, imported in graph.items():
        part = _shared_part(name)
        if part is None:
            continue
        for target in imported:
            target_part = _shared_part(target)
            if target_part is None or target_part == part or target_part in SHARED_MAY_IMPORT[part]:
                continue
            wrong.append(f"{name} -> {target}")
    return wrong


def test_shared_packages_import_only_what_their_rules_allow():
    assert _rule_violations(GRAPH) == [], "imports across shared/ packages that the rules forbid"


def test_the_package_rule_check_sees_a_job_importing_the_web_side_or_the_other_job():
    graph = {
        "shared.compute.x": {"shared.web.contract", "shared.settings", "shared.compute.y"},
        "shared.scoring.z": {"shared.compute.y"},
        "shared.web.page": {"shared.compute.y", "shared.scoring.z"},
        "shared.settings": {"shared.web.page"},
    }
    assert sorted(_rule_violations(graph)) == [
        "shared.compute.x -> shared.web.contract",
        "shared.scoring.z -> shared.compute.y",
        "shared.settings -> shared.web.page",
    ]


def test_shared_keeps_a_small_platform_at_its_top_level():
    top = sorted(p.stem for p in (ROOT / "shared").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_SHARED_TOP_LEVEL_MODULES, top
    for package in SHARED_PACKAGES:
        init = ROOT / package.replace(".", "/") / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring) > 80, f"{init} needs a docstring saying what the package holds"


@pytest.mark.parametrize("layer", ["triggers", "orchestrations", "activities"])
def test_function_modules_do_not_import_each_other(layer: str):
    others = {"triggers", "orchestrations", "activities", "devhost", "function_app"} - {layer}
    for name, imported in GRAPH.items():
        if name.split(".")[0] == layer:
            wrong = {target for target in imported if target.split(".")[0] in others}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_shared_never_imports_functions_durable_or_devhost():
    for name, path in MODULES.items():
        if not name.startswith("shared"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for imported in names:
                assert not imported.startswith(("azure.functions", "azure.durable_functions", "devhost")), (
                    f"{name} imports {imported}"
                )


def test_each_function_module_holds_its_own_blueprint():
    for package in ("triggers", "orchestrations", "activities"):
        init = (ROOT / package / "__init__.py").read_text()
        assert "Blueprint(" not in init, f"{package}/__init__.py defines a blueprint that modules import back"
        for path in (ROOT / package).glob("*.py"):
            source = path.read_text()
            if path.name == "__init__.py" or "@bp." not in source:  # a helper of phases registers nothing
                continue
            assert "bp = df.Blueprint()" in source, f"{path.name} has no Blueprint of its own"
            assert f"{package} import {path.stem}" in (ROOT / "function_app.py").read_text() or (
                f" {path.stem}," in (ROOT / "function_app.py").read_text()
            ), f"function_app.py does not register {path}"


def test_devhost_never_imports_the_app() -> None:
    # devhost is its own unit: what it needs of the app (Key Vault references, telemetry, the app's errors) is
    # handed in at start by DEVHOST_APP_HOOKS (local_hooks.py), never imported from shared/ or the function modules.
    app_modules = [name for name in GRAPH if not name.startswith("devhost")]
    assert any(name.startswith("shared") for name in app_modules)  # the checker sees the app
    leaks = {
        name: sorted(target for target in targets if not target.startswith("devhost"))
        for name, targets in GRAPH.items()
        if name.startswith("devhost")
    }
    assert {name: targets for name, targets in leaks.items() if targets} == {}


MAX_FUNCTION_LINES = 60
# Functions allowed over the limit, each with its reason. None today.
LONG_FUNCTIONS_ALLOWED: set[tuple[str, str]] = set()


def _long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in `source` longer than `limit` lines (its `def` to its end)."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_length_check_sees_a_long_function():
    body = "\n".join(f"    x{k} = {k}" for k in range(60))
    assert _long_functions(f"def long():\n{body}\n", MAX_FUNCTION_LINES) == [("long", 61)]
    assert _long_functions(f"def short():\n{body[: body.rindex(chr(10))]}\n", MAX_FUNCTION_LINES) == []


def test_no_function_in_triggers_orchestrations_activities_is_over_60_lines():
    """A newcomer reads an orchestrator as a sequence of named phases; a long function hides the seams."""
    found = []
    for package in ("triggers", "orchestrations", "activities"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for name, lines in _long_functions(path.read_text(), MAX_FUNCTION_LINES):
                if (relative, name) not in LONG_FUNCTIONS_ALLOWED:
                    found.append(f"{relative}:{name} ({lines} lines)")
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines: {found}"


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in tests/helpers/: a test module importing another drags in its fixtures and its
    collection side effects, and breaks when that module's tests move."""
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            # Another test module (a conftest is pytest's own place for fixtures; importing it is the fixtures' owner's
            # call, not this rule's).
            found += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.startswith(("tests.unit.test_", "tests.integration.test_"))
            ]
    assert found == []
