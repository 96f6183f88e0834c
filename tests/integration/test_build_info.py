"""The deployment package reports its build through devhost, and scripts/wait-for-build.sh (run by both CI
pipelines after a deploy) passes only when the app reports the expected commit."""

from __future__ import annotations

import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("zip") is None, reason="the zip command is not installed"),
]

COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
APP_SETTINGS = {
    "DATA_STORAGE": "UseDevelopmentStorage=true",
    # The nightly timer's schedule must be set for the app to start; 1 January never comes during a test.
    "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
}


@pytest.fixture(scope="module")
def packaged_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """devhost running the app from its deployment package (scripts/package.sh), not from the checkout."""
    work = tmp_path_factory.mktemp("package")
    subprocess.run(
        ["bash", str(APP_ROOT / "scripts" / "package.sh"), "--output", str(work / "app.zip")],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "BUILD_COMMIT": COMMIT, "SOURCE_DATE_EPOCH": "1767225600"},
    )
    zipfile.ZipFile(work / "app.zip").extractall(work / "wwwroot")
    host = start_devhost(work / "host", APP_SETTINGS, script_root=work / "wwwroot", workers=1)
    yield host
    host.stop()


def _wait_for_build(url: str, commit: str, timeout: int, interval: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(APP_ROOT / "scripts" / "wait-for-build.sh"), url, commit, str(timeout), str(interval)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )


def test_health_of_the_package_reports_the_commit_and_build_time(packaged_host: RunningHost) -> None:
    response = packaged_host.request("GET", "/api/health", key=False)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "commit": COMMIT, "built_at": "2026-01-01T00:00:00Z"}


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
