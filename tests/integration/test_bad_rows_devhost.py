"""Issue 12 through devhost, as the README's commands showed it: a file of 150,000 bad rows (`1,abc`) scores in
about the time of 150,000 good rows, and its errors CSV is small."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.scoring import APP_SETTINGS, ERRORS, SUBSCRIPTIONS, unique, wait_for_run
from tests.helpers.storage import download, upload

pytestmark = pytest.mark.integration

ROWS = 150_000


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """The app with its default chunk size (a 1 MB file is one chunk) and the blob relay on."""
    settings = {**APP_SETTINGS, "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS)}
    running = start_devhost(tmp_path_factory.mktemp("bad-rows-devhost"), settings)
    yield running
    running.stop()


def _seconds(run: dict[str, Any]) -> float:
    """Run time as the Durable runtime recorded it (created -> last updated)."""

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(run["lastUpdatedTime"]) - parse(run["createdTime"])).total_seconds()


def _score(host: RunningHost, stem: str, data: bytes) -> tuple[str, float]:
    name = unique(stem)
    upload(host, name, data)
    run = wait_for_run(host, name, timeout=180)
    assert run["runtimeStatus"] == "Completed", run
    return name, _seconds(run)


def test_a_file_of_bad_rows_scores_about_as_fast_as_good_rows_with_a_small_errors_csv(host: RunningHost) -> None:
    good = b"id,height\n" + b"".join(f"{i},{150 + i % 50}.5\n".encode() for i in range(ROWS))
    bad = b"id,height\n" + b"1,abc\n" * ROWS
    _score(host, "warm-up", good)  # each worker loads the model and polars on its first chunk
    _score(host, "warm-up", good)
    good_s = min(_score(host, "good", good)[1] for _ in range(3))
    bad_runs = [_score(host, "bad", bad) for _ in range(3)]
    bad_s = min(seconds for _, seconds in bad_runs)
    print(f"150,000 rows through devhost, fastest of 3: good {good_s:.2f} s, bad {bad_s:.2f} s")
    assert bad_s <= 2 * good_s, f"bad rows: {bad_s:.2f} s, good rows: {good_s:.2f} s"

    errors = download(host, ERRORS, bad_runs[0][0])
    assert errors == b"line,last_line,column,problem,value\n2,150001,height,not_a_number,abc\n"
    assert len(errors) < len(bad) // 1000  # was 9x the input: one `line,reason` row per bad line
