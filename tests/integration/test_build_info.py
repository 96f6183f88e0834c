"""The deployment package reports its build and its functions through devhost, and scripts/wait-for-build.sh (run
by both CI pipelines after a deploy) passes only when the app reports the expected commit with every function the
package indexed when it was built."""

from __future__ import annotations

import json
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.integration.conftest import PACKAGE_BUILT_AT, PACKAGE_COMMIT, DeploymentPackage

pytestmark = pytest.mark.integration

COMMIT = PACKAGE_COMMIT
APP_SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    # The nightly timer's schedule must be set for the app to start; 1 January never comes during a test.
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
}


@pytest.fixture(scope="module")
def packaged_host(
    deployment_package: DeploymentPackage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHost]:
    """devhost running the app from its deployment package (scripts/package.sh --with-deps), not from the checkout."""
    work = tmp_path_factory.mktemp("packaged-host")
    host = start_devhost(work / "host", APP_SETTINGS, script_root=deployment_package.root, workers=1)
    yield host
    host.stop()


def _wait_for_build(
    url: str, commit: str, timeout: int, interval: int, package: Path | None = None
) -> subprocess.CompletedProcess[str]:
    options = ["--package", str(package)] if package else []
    return subprocess.run(
        ["bash", str(APP_ROOT / "scripts" / "wait-for-build.sh"), *options, url, commit, str(timeout), str(interval)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )


def _package_listing(tmp_path: Path, functions: list[str]) -> Path:
    """A package whose build.json lists these functions (wait-for-build reads nothing else from it)."""
    path = tmp_path / "app.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "build.json", json.dumps({"commit": COMMIT, "built_at": PACKAGE_BUILT_AT, "functions": functions})
        )
    return path


def test_health_of_the_package_reports_the_commit_build_time_and_functions(
    packaged_host: RunningHost, deployment_package: DeploymentPackage
) -> None:
    response = packaged_host.request("GET", "/api/health", key=False)
    assert response.status_code == 200
    built = json.loads((deployment_package.root / "build.json").read_text())
    assert response.json() == {
        "status": "ok",
        "commit": COMMIT,
        "built_at": PACKAGE_BUILT_AT,
        "functions": built["functions"],
    }


def test_wait_for_build_passes_when_the_app_runs_the_package_with_every_function(
    packaged_host: RunningHost, deployment_package: DeploymentPackage
) -> None:
    result = _wait_for_build(packaged_host.base_url, COMMIT, timeout=10, interval=1, package=deployment_package.zip)
    assert result.returncode == 0, result.stderr
    count = len(json.loads((deployment_package.root / "build.json").read_text())["functions"])
    assert f"with its {count} functions" in result.stdout


def test_wait_for_build_reads_the_package_directory_azd_ships(
    packaged_host: RunningHost, deployment_package: DeploymentPackage
) -> None:
    # azd ships a directory (azure.yaml `dist`), not a zip: its build.json names the functions just the same.
    result = _wait_for_build(packaged_host.base_url, COMMIT, timeout=10, interval=1, package=deployment_package.root)
    assert result.returncode == 0, result.stderr


def test_wait_for_build_fails_while_a_function_of_the_package_is_missing(
    packaged_host: RunningHost, deployment_package: DeploymentPackage, tmp_path: Path
) -> None:
    # As after a deploy whose new Event Grid trigger did not register: the right commit answers, one function short.
    functions = json.loads((deployment_package.root / "build.json").read_text())["functions"]
    package = _package_listing(tmp_path, [*functions, "on_new_event"])
    result = _wait_for_build(packaged_host.base_url, COMMIT, timeout=2, interval=1, package=package)
    assert result.returncode == 1
    assert f"still reports {COMMIT} without the functions ['on_new_event']" in result.stderr
    assert "waiting for commit" in result.stdout


def test_wait_for_build_refuses_a_package_that_lists_no_functions(tmp_path: Path) -> None:
    result = _wait_for_build(
        "http://127.0.0.1:9", COMMIT, timeout=1, interval=1, package=_package_listing(tmp_path, [])
    )
    assert result.returncode == 2
    assert "lists no functions in its build.json" in result.stderr


def test_wait_for_build_passes_when_the_app_reports_the_deployed_commit(packaged_host: RunningHost) -> None:
    result = _wait_for_build(packaged_host.base_url, COMMIT, timeout=10, interval=1)
    assert result.returncode == 0, result.stderr
    assert f"runs commit {COMMIT}" in result.stdout


def test_wait_for_build_fails_within_its_limit_while_the_old_build_answers(packaged_host: RunningHost) -> None:
    new_commit = "f" * 40
    started = time.monotonic()
    result = _wait_for_build(packaged_host.base_url, new_commit, timeout=3, interval=1)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"still reports {COMMIT}, not the deployed commit {new_commit}" in result.stderr
    assert result.stdout.count("waiting for commit") >= 2  # it polled, it did not give up at once
    assert elapsed < 30


def test_wait_for_build_fails_when_nothing_answers(tmp_path: Path) -> None:
    from devhost.azurite import free_port

    result = _wait_for_build(f"http://127.0.0.1:{free_port()}", COMMIT, timeout=1, interval=1)
    assert result.returncode == 1
    assert "still reports an error" in result.stderr


def test_checkout_without_build_file_is_not_mistaken_for_a_build() -> None:
    # Run from the repository (devhost, tests) nothing names a build; build.json is never committed.
    tracked = subprocess.run(
        ["git", "ls-files", "build.json"], cwd=APP_ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""
    assert "/build.json" in (APP_ROOT / ".gitignore").read_text().splitlines()
