"""The deployment package as every pipeline ships it (`scripts/package.sh --with-deps`), built once per test session.

The locked dependencies are cached by the hash of requirements.txt under dist/cache (gitignored): the first build
of a lock downloads about 135 MB of wheels (about 2 minutes here), later builds take about 10 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT

PACKAGE_COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
PACKAGE_BUILT_AT = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class DeploymentPackage:
    zip: Path
    root: Path  # the zip, extracted


@pytest.fixture(scope="session")
def deployment_package(tmp_path_factory: pytest.TempPathFactory) -> DeploymentPackage:
    if shutil.which("zip") is None:
        pytest.skip("the zip command is not installed")
    work = tmp_path_factory.mktemp("deployment-package")
    env = {
        # The interpreter the tests run on (CPython 3.11) builds and indexes the package; pip installs only into
        # the package (--target), never into this environment.
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(work)),
        "BUILD_COMMIT": PACKAGE_COMMIT,
        "SOURCE_DATE_EPOCH": "1767225600",
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "PACKAGE_CACHE_DIR"))},
    }
    result = subprocess.run(
        ["bash", str(APP_ROOT / "scripts" / "package.sh"), "--with-deps", "--output", str(work / "app.zip")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(work / "app.zip") as archive:
        archive.extractall(work / "wwwroot")
    return DeploymentPackage(zip=work / "app.zip", root=work / "wwwroot")
