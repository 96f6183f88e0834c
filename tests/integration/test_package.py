"""The deployment package runs as built: unzipped, it imports `function_app` and indexes every function in an
interpreter that sees nothing but the package (as the Python worker does in Azure, with no remote build), and it
holds exactly the locked dependencies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT
from tests.integration.conftest import DeploymentPackage

pytestmark = pytest.mark.integration

INDEXER = APP_ROOT / "scripts" / "index_functions.py"
SITE_PACKAGES = ".python_packages/lib/site-packages/"


def _index(root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, str(INDEXER), str(root)], capture_output=True, text=True, timeout=180, check=False
    )


def test_package_imports_and_indexes_every_function_in_isolation(deployment_package: DeploymentPackage) -> None:
    result = _index(deployment_package.root, "-I", "-S", "-B")
    assert result.returncode == 0, result.stderr
    indexed = result.stdout.split()
    # What the app defines, read by this environment's interpreter from the checkout (in a process of its own: the
    # library's get_functions() runs once per app object).
    defined = subprocess.run(
        [
            sys.executable,
            "-c",
            "import function_app\nfor f in function_app.app.get_functions(): print(f.get_function_name())",
        ],
        cwd=APP_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert indexed == sorted(defined)
    assert {"on_blob_created", "nightly_shutdown", "reconcile_schedules", "shutdown_orchestrator"} <= set(indexed)
    # What the package recorded when it was built, and what /api/health must report once it runs.
    assert json.loads((deployment_package.root / "build.json").read_text())["functions"] == indexed


def test_the_isolated_interpreter_sees_nothing_but_the_package(
    deployment_package: DeploymentPackage, tmp_path: Path
) -> None:
    # The same code without its .python_packages does not import: nothing of this environment leaks in.
    for item in deployment_package.root.iterdir():
        if item.name != ".python_packages":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp_path / item.name)
    result = _index(tmp_path, "-I", "-S", "-B")
    assert result.returncode == 1
    assert "importing function_app failed: ModuleNotFoundError: No module named 'azure'" in result.stderr
    # An interpreter with its site-packages on the path is refused rather than trusted.
    result = _index(deployment_package.root, "-B")
    assert result.returncode == 1 and "run with `python3 -I -S`" in result.stderr


def test_package_holds_exactly_the_locked_dependencies(deployment_package: DeploymentPackage) -> None:
    names = zipfile.ZipFile(deployment_package.zip).namelist()
    installed = {
        match.group(1).lower().replace("-", "_"): match.group(2)
        for name in names
        if (match := re.fullmatch(re.escape(SITE_PACKAGES) + r"([^/]+)-([^-/]+)\.dist-info/", name))
    }
    locked = {
        match.group(1).lower().replace("-", "_").replace(".", "_"): match.group(2)
        for line in (APP_ROOT / "requirements.txt").read_text().splitlines()
        if (match := re.match(r"([A-Za-z0-9_.-]+)==([^ ;\\]+)", line))
    }
    assert len(locked) > 50
    assert {name.replace(".", "_"): version for name, version in installed.items()} == locked
    for excluded in ("tests/", "devhost/", "training/", "benchmarks/", ".venv/", "node_modules/"):
        assert not any(name.startswith(excluded) for name in names), f"{excluded} must not be deployed"
