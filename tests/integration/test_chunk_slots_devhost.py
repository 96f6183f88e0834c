"""Issue 12 through devhost: one worker process never scores more chunks at once than its memory budget allows,
even when the orchestration hands it many chunk activities at once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.scoring import APP_SETTINGS, SUBSCRIPTIONS, assert_scored, people, unique, wait_for_run
from tests.helpers.storage import INPUT, upload

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """One worker; 8 chunks of a file dispatched at once; a budget that allows one chunk at a time."""
    settings = {
        **APP_SETTINGS,
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS),
        "SCORING_CHUNK_BYTES": str(CHUNK),
        "SCORING_PARALLEL_CHUNKS": "8",
        "SCORING_WORKER_MEMORY_MB": "64",  # below the base of an idle worker: at least one slot, so exactly one
    }
    running = start_devhost(tmp_path_factory.mktemp("chunk-slots-devhost"), settings, workers=1)
    yield running
    running.stop()


def test_one_worker_scores_one_chunk_at_a_time_when_the_budget_allows_one(host: RunningHost) -> None:
    source = people(40_000)
    data = source.data()
    assert len(data) > 12 * CHUNK
    name = unique("slots")
    etag = upload(host, name, data)
    run = wait_for_run(host, name, timeout=180)
    assert_scored(host, name, source, run, etag)

    lines = [line for line in host.log_text().splitlines() if f"{INPUT}/{name}" in line]
    busy = [
        (int(m[1]), int(m[2]))
        for line in lines
        if (m := re.search(r"scored chunk \d+ of .*\((\d+) of (\d+) chunk slots of this process busy\)", line))
    ]
    assert len(busy) == run["output"]["chunks"], lines[-5:]
    assert {limit for _, limit in busy} == {1}
    assert max(n for n, _ in busy) == 1
    # The orchestration did hand the worker several chunks at once: they waited for the slot.
    assert any("waits for a chunk slot (1 of 1 busy)" in line for line in lines)
