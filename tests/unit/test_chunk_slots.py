"""Issue 12: one process never scores more chunks at once than its memory budget allows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from devhost.azurite import Azurite
from shared import blobs, settings
from shared.errors import SettingsError
from shared.scoring import chunk_slots
from shared.scoring.chunk_scoring import plan_scoring, score_chunk
from shared.scoring.commit import commit_predictions
from shared.scoring.payloads import ChunkPlan, ChunkResult, ScoringRequest

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("budget_mb", "chunk_bytes", "slots"),
    [
        (600, 8 * MIB, 4),  # the defaults: 200 + 4 x 88 = 552 MiB at most
        (600, 16 * MIB, 2),
        (2048, 8 * MIB, 21),
        (300, 8 * MIB, 1),
        (100, 64 * MIB, 1),  # a budget below one chunk still scores, one chunk at a time
    ],
)
def test_slots_follow_the_budget_and_the_chunk_size(budget_mb: int, chunk_bytes: int, slots: int) -> None:
    assert chunk_slots.chunk_slots(budget_mb, chunk_bytes) == slots
    env = {"SCORING_WORKER_MEMORY_MB": str(budget_mb), "SCORING_CHUNK_BYTES": str(chunk_bytes)}
    assert chunk_slots.gate(env).limit == slots


def test_the_budget_is_a_declared_setting_with_a_default_of_600() -> None:
    spec = settings.ALL_SETTINGS["SCORING_WORKER_MEMORY_MB"]
    assert spec.get({}) == 600 and "chunks at once" in spec.doc
    with pytest.raises(SettingsError, match="SCORING_WORKER_MEMORY_MB='lots' is malformed: expected an integer"):
        spec.get({"SCORING_WORKER_MEMORY_MB": "lots"})


def test_threads_of_one_process_never_score_more_chunks_at_once_than_the_limit(azurite: Azurite) -> None:
    # 16 MiB chunks in a 600 MiB budget: 2 slots. The file itself is planned in small chunks so that there are
    # many; the limit follows the settings, as in a worker whose chunks come out smaller than configured.
    env = {
        "DATA_STORAGE": azurite.connection_string,
        "SCORING_WORKER_MEMORY_MB": "600",
        "SCORING_CHUNK_BYTES": str(16 * MIB),
    }
    suffix = uuid.uuid4().hex[:12]
    inp, out, err = f"in{suffix}", f"out{suffix}", f"err{suffix}"
    blobs.ensure_container(inp, env)
    data = b"id,height\n" + b"".join(f"{i},{150 + i % 40}\n".encode() for i in range(4000))
    blobs.upload(inp, "x.csv", data, env=env)
    request = ScoringRequest(account="devstoreaccount1", container=inp, name="x.csv", etag="", size=0, run_id="r")
    plan = plan_scoring(
        request, chunk_bytes=2048, output_container=out, errors_container=err, features=("height",), env=env
    )
    assert len(plan.chunks) >= 12

    lock = threading.Lock()
    now = peak = 0

    def predict(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.1)  # long enough for every thread to be inside at once if nothing stops them
        with lock:
            now -= 1
        return 0.5 * columns["height"]

    def run(index: int) -> ChunkResult:
        one = ChunkPlan(**{**plan.__dict__, "chunks": tuple(c for c in plan.chunks if c.index == index)})
        return score_chunk(
            one, index, features=("height",), prediction_column="predicted_weight", predict=predict, env=env
        )

    gate = chunk_slots.gate(env)
    with ThreadPoolExecutor(12) as pool:  # as the host's thread pool would run 12 chunk activities
        results = list(pool.map(run, [c.index for c in plan.chunks]))
    assert peak == 2 == gate.limit  # bounded, and the bound is used
    assert gate.peak <= 2 and gate.in_flight == 0
    commit = commit_predictions(plan, results, model_name="m", model_version="1", env=env)
    assert commit.rows == 4000
