"""`python -m devhost.upload` as a person runs it: a progress bar for the upload, then one for the scoring run's
chunks (from its custom status), then where the predictions are; a run that fails says why and exits 1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = pytest.mark.integration

CHUNK = 1024  # the smallest chunk the app accepts: a 40 KB file has dozens


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        "SCORING_CHUNK_BYTES": str(CHUNK),
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(
            [{"function": "on_blob_created", "subjectBeginsWith": "/blobServices/default/containers/incoming/"}]
        ),
    }
    running = start_devhost(tmp_path_factory.mktemp("upload-devhost"), settings)
    yield running
    running.stop()


def _upload(host: RunningHost, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "devhost.upload", str(path), "--azurite-port", str(host.azurite_port)]
    command += ["--host-url", host.base_url, "--key", host.key, "--timeout", "120", *extra]
    return subprocess.run(command, cwd=APP_ROOT, capture_output=True, text=True, timeout=180, check=False)


def test_upload_shows_the_upload_and_the_scoring_chunks_then_the_predictions(host: RunningHost, tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    path.write_text("height\n" + "".join(f"{150 + i % 40}.5\n" for i in range(6000)))
    size = path.stat().st_size
    result = _upload(host, path)
    assert result.returncode == 0, result.stderr
    bars = result.stderr.replace("\r", "\n")
    # tqdm's last frame of each bar: everything uploaded, every chunk scored.
    assert re.search(r"upload: 100%.*\| ?[\d.]+k/[\d.]+k", bars), bars
    chunks = re.findall(r"scoring: +\d+%.*?\| *(\d+)/(\d+)", bars)
    assert chunks and chunks[-1][0] == chunks[-1][1] and int(chunks[-1][1]) >= size // CHUNK - 1, bars
    assert "predictions: predictions/progress.csv" in result.stdout and "6000 rows, 0 bad" in result.stdout


def test_a_run_that_fails_says_why_and_exits_1(host: RunningHost, tmp_path: Path) -> None:
    path = tmp_path / "no-height.csv"
    path.write_text("stature\n150\n")
    result = _upload(host, path)
    assert result.returncode == 1
    assert "Failed" in result.stderr and "height" in result.stderr, result.stderr
    assert "predictions:" not in result.stdout
