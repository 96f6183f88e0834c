"""devhost's one door to durabletask's private parts refuses to load under a durabletask it was not written for."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from devhost.durabletask_internals import WRITTEN_FOR, DurabletaskVersionError, check_version

APP_ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_durabletask_is_the_one_devhost_was_written_for() -> None:
    assert version("durabletask").startswith(WRITTEN_FOR + ".")
    check_version(version("durabletask"))


@pytest.mark.parametrize("installed", ["1.12.0", "1.12.9", "1.12.0rc1"])
def test_patch_releases_of_the_written_for_version_load(installed: str) -> None:
    check_version(installed)


@pytest.mark.parametrize("installed", ["1.13.0", "1.11.2", "2.0.0", "1.1", "(not installed)"])
def test_another_version_is_refused_naming_both_versions_and_what_to_do(installed: str) -> None:
    with pytest.raises(DurabletaskVersionError) as caught:
        check_version(installed)
    message = str(caught.value)
    assert f"durabletask {installed} is installed" in message
    assert f"needs durabletask {WRITTEN_FOR}.x" in message
    assert "devhost/durabletask_internals.py" in message
    assert f"durabletask=={WRITTEN_FOR}.*" in message


def test_devhost_engine_does_not_import_under_another_durabletask(tmp_path: Path) -> None:
    # A distribution earlier on sys.path is the one importlib.metadata reports: durabletask 1.13.0 as far as
    # devhost can tell, while the 1.12 code stays importable.
    dist = tmp_path / "durabletask-1.13.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: durabletask\nVersion: 1.13.0\n")
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import devhost.engine"],
        cwd=APP_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DurabletaskVersionError: devhost needs durabletask 1.12.x, but durabletask 1.13.0 is installed" in (
        result.stderr
    )
