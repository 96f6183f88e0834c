"""A run of hundreds of chunks through devhost, measured as an operator measures it (the Durable HTTP API's
history): its waves are sub-orchestrations named after the run, and no history grows with the file's chunks
(issue 20; `python -m benchmarks.scoring_scale` measures a 5 GB file the same way, see docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.durable_sizes import measure_run
from tests.helpers.scoring import APP_SETTINGS, ERRORS, assert_scored, people, start, unique, wait_for_run
from tests.helpers.storage import INPUT, blob_service, upload

pytestmark = pytest.mark.integration

WAVE = 16


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    settings = {**APP_SETTINGS, "SCORING_CHUNK_BYTES": "1024", "SCORING_WAVE_SIZE": str(WAVE)}
    running = start_devhost(tmp_path_factory.mktemp("scoring-scale"), settings, workers=2)
    yield running
    running.stop()


def test_a_run_of_hundreds_of_chunks_keeps_its_histories_small(host: RunningHost) -> None:
    source = people(8_000, seed=41)
    name = unique("many-chunks")
    etag = upload(host, name, source.data())
    assert start(host, {"container": INPUT, "name": name}).status_code == 202
    run = wait_for_run(host, name, timeout=240)
    assert_scored(host, name, source, run, etag)
    chunks = run["output"]["chunks"]
    waves = -(-chunks // WAVE)
    assert chunks > 150

    sizes = {s.instance_id: s for s in measure_run(host, run["instanceId"])}
    own = sizes.pop(run["instanceId"])
    assert sorted(sizes) == sorted(f"{run['instanceId']}:score:{w}" for w in range(waves))
    # Each wave adds one sub-orchestration's input and counts to the run's history, about 1 KB; a chunk adds
    # nothing there. (Before, every chunk's range and result passed through it: about 600 bytes a chunk.)
    assert own.history_bytes < 1200 * waves + 12_288, own
    assert max(s.history_bytes for s in sizes.values()) < 2500 * WAVE + 8192  # a wave: about 2 KB a chunk
    assert max(s.largest_message_bytes for s in [own, *sizes.values()]) < 300 * WAVE + 4096
    # The wave blobs that held the chunks' ranges and results are gone with the run.
    leftovers = blob_service(host).get_container_client(ERRORS).list_blobs(name_starts_with=f"{name}.parts/")
    assert [b.name for b in leftovers] == []
