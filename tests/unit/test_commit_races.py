"""Two runs of one output against Azurite, step by step: whichever commits first, one whole output of the right run.

The interleavings that devhost produces only by timing are written out here in a fixed order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import SourceChangedError
from shared.scoring.chunk_scoring import plan_scoring, score_chunk
from shared.scoring.commit import commit_predictions
from shared.scoring.payloads import ChunkPlan, ChunkResult, CommitResult, ScoringRequest

FEATURES = ("height",)
DATA = b"id,height\n" + b"".join(b"%d,%d\n" % (i, 150 + i % 40) for i in range(2000))
EXPECTED = b"id,height,predicted_weight\n" + b"".join(
    b"%d,%d,%s\n" % (i, 150 + i % 40, repr(0.5 * (150 + i % 40) + 3.0).encode()) for i in range(2000)
)


def predict(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    return 0.5 * cols["height"] + 3.0


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string}


@dataclass
class Place:
    env: dict[str, str]
    inp: str
    out: str
    err: str
    name: str = "x.csv"

    def read_output(self) -> bytes:
        info = blobs.blob_info(self.out, self.name, self.env)
        return blobs.read_range(self.out, self.name, 0, info.size, env=self.env)


@pytest.fixture
def place(env: dict[str, str]) -> Place:
    suffix = uuid.uuid4().hex[:12]
    p = Place(env, f"in{suffix}", f"out{suffix}", f"err{suffix}")
    blobs.ensure_container(p.inp, env)
    blobs.upload(p.inp, p.name, DATA, env=env)
    return p


def plan(place: Place, run_id: str, *, force: bool = False, requested: str = "") -> ChunkPlan:
    etag = blobs.blob_info(place.inp, place.name, place.env).etag
    request = ScoringRequest("devstoreaccount1", place.inp, place.name, etag, 0, force, run_id, requested)
    return plan_scoring(
        request, chunk_bytes=4096, output_container=place.out, errors_container=place.err, env=place.env
    )


def score(place: Place, p: ChunkPlan, indexes: list[int] | None = None) -> list[ChunkResult]:
    chosen = [c.index for c in p.chunks] if indexes is None else indexes
    return [
        score_chunk(p, i, features=FEATURES, prediction_column="predicted_weight", predict=predict, env=place.env)
        for i in chosen
    ]


def commit(place: Place, p: ChunkPlan, results: list[ChunkResult]) -> CommitResult:
    return commit_predictions(p, results, model_name="m", model_version="1", env=place.env)


def test_a_forced_run_whose_blocks_were_discarded_scores_them_again_and_wins(place: Place) -> None:
    first, forced = plan(place, "first"), plan(place, "forced", force=True, requested="2026-11-29T10:00:00.000000Z")
    first_results, forced_results = score(place, first), score(place, forced)
    assert len(first.chunks) > 3
    assert commit(place, first, first_results).committed
    # The first run's commit discarded every block the forced run had staged: it is told which, not failed.
    lost = commit(place, forced, forced_results)
    assert not lost.committed and lost.restage == tuple(c.index for c in forced.chunks)
    redone = {r.index: r for r in score(place, forced, list(lost.restage))}
    final = commit(place, forced, [redone[r.index] for r in forced_results])
    assert final.committed
    assert place.read_output() == EXPECTED
    assert blobs.blob_info(place.out, place.name, place.env).metadata["run_id"] == "forced"


def test_a_run_that_ends_after_the_forced_run_leaves_its_output(place: Place) -> None:
    first, forced = plan(place, "first"), plan(place, "forced", force=True, requested="2026-11-29T10:00:00.000000Z")
    first_results, forced_results = score(place, first), score(place, forced)
    assert commit(place, forced, forced_results).committed
    late = commit(place, first, first_results)
    assert not late.committed and "superseded" in late.reason and "from run forced" in late.reason
    assert blobs.blob_info(place.out, place.name, place.env).metadata["run_id"] == "forced"
    assert place.read_output() == EXPECTED


def test_of_two_forced_runs_the_later_request_stays(place: Place) -> None:
    early = plan(place, "early", force=True, requested="2026-11-29T10:00:00.000000Z")
    later = plan(place, "later", force=True, requested="2026-11-29T10:00:01.000000Z")
    early_results, later_results = score(place, early), score(place, later)
    assert commit(place, later, later_results).committed
    assert not commit(place, early, early_results).committed
    assert blobs.blob_info(place.out, place.name, place.env).metadata["run_id"] == "later"


def test_a_run_of_a_replaced_version_commits_nothing(place: Place) -> None:
    old = plan(place, "old")
    old_results = score(place, old)
    blobs.upload(place.inp, place.name, DATA + b"9999,170\n", env=place.env)
    new_etag = blobs.blob_info(place.inp, place.name, place.env).etag.strip('"')
    with pytest.raises(SourceChangedError, match=f"x.csv was replaced by eTag {new_etag} while it was being scored"):
        commit(place, old, old_results)
    assert blobs.find_blob(place.out, place.name, place.env) is None


def test_the_errors_csv_of_an_older_version_goes_when_the_new_version_has_no_bad_rows(place: Place) -> None:
    blobs.upload(place.inp, place.name, DATA + b"2000,tall\n", env=place.env)
    old = plan(place, "old")
    assert commit(place, old, score(place, old)).bad_rows == 1
    assert blobs.find_blob(place.err, place.name, place.env) is not None
    blobs.upload(place.inp, place.name, DATA, env=place.env)
    new = plan(place, "new")
    assert commit(place, new, score(place, new)).bad_rows == 0
    assert place.read_output() == EXPECTED
    assert blobs.find_blob(place.err, place.name, place.env) is None
