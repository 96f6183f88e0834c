"""A run kept in wave blobs (shared/scoring/waves.py) against Azurite, step by step as the orchestrations drive it:
the predictions are exact, quoted line breaks across boundaries are realigned, retried steps change nothing, and
the run's working blobs go."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import numpy as np
import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import ScoringError
from shared.scoring import waves
from shared.scoring.chunk_scoring import plan_scoring, score_chunk
from shared.scoring.payloads import ChunkResult, CommitResult, RunRef, ScoringRequest, WaveSummary

FEATURES = ("height",)


def predict(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    return 0.5 * cols["height"] + 3.0


def rows(count: int, quoted_breaks: bool = False) -> tuple[bytes, bytes]:
    """An input CSV and its expected predictions; with `quoted_breaks` every 40th note spans 20 lines."""

    def note(i: int) -> bytes:
        return b'"' + b"\n".join([b"line"] * 20) + b'"' if quoted_breaks and i % 40 == 0 else b"plain"

    data = b"id,height,note\n" + b"".join(b"%d,%d,%s\n" % (i, 150 + i % 40, note(i)) for i in range(count))
    expected = b"id,height,note,weight\n" + b"".join(
        b"%d,%d,%s,%s\n" % (i, 150 + i % 40, note(i), repr(0.5 * (150 + i % 40) + 3.0).encode()) for i in range(count)
    )
    return data, expected


class Place:
    """Containers of one test and the run's steps, each as its activity performs it."""

    def __init__(self, env: dict[str, str], data: bytes):
        suffix = uuid.uuid4().hex[:12]
        self.env, self.inp, self.out, self.err, self.name = env, f"in{suffix}", f"out{suffix}", f"err{suffix}", "x.csv"
        blobs.ensure_container(self.inp, env)
        blobs.upload(self.inp, self.name, data, env=env)

    def plan(self, chunk_bytes: int, wave_size: int, run_id: str = "run-1", requested: str = "") -> RunRef:
        """The run planned (`self.planned`); with `requested`, a forced run (POST /api/scoring with force)."""
        etag = blobs.blob_info(self.inp, self.name, self.env).etag
        request = ScoringRequest(
            "devstoreaccount1", self.inp, self.name, etag, 0, bool(requested), run_id=run_id, requested=requested
        )
        plan = plan_scoring(
            request, chunk_bytes=chunk_bytes, output_container=self.out, errors_container=self.err, env=self.env
        )
        self.planned = waves.save_plan(plan, wave_size, self.env)
        return self.planned.ref

    def score_wave(self, run: RunRef, wave: int) -> WaveSummary:
        plan = waves.unscored_plan(run, wave, self.env)
        results = [
            score_chunk(plan, c.index, features=FEATURES, prediction_column="weight", predict=predict, env=self.env)
            for c in plan.chunks
        ]
        return waves.record_results(run, wave, results, self.env)

    def commit(self, run: RunRef) -> CommitResult:
        return waves.commit_run(run, error_threshold=-1, env=self.env)

    def output(self) -> bytes:
        return blobs.read_blob(self.out, self.name, self.env)

    def working_blobs(self) -> list[str]:
        return blobs.list_names(self.err, "", self.env)


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string}


def test_a_run_in_waves_commits_exact_predictions_and_leaves_no_working_blobs(env: dict[str, str]) -> None:
    data, expected = rows(3000)
    place = Place(env, data)
    run = place.plan(chunk_bytes=2048, wave_size=8)
    assert run.chunks > 20 and run.waves == -(-run.chunks // 8)
    assert place.planned.plan.chunks == ()  # the ranges are in the wave blobs, not in what the orchestrations pass
    assert len(run.to_dict()) == 5 and len(str(run.to_dict())) < 200  # all a wave is given
    summaries = [place.score_wave(run, w) for w in range(run.waves)]
    assert sum(s.chunks for s in summaries) == sum(s.scored for s in summaries) == run.chunks
    assert sum(s.rows for s in summaries) == 3000
    assert waves.unscored_plan(run, 0, env).chunks == ()  # a wave run again has nothing left to score
    committed = place.commit(run)
    assert committed.committed and committed.rows == 3000 and committed.chunks == run.chunks
    assert place.output() == expected
    assert len(place.working_blobs()) == 1 + run.waves  # kept until the orchestration has the commit's outcome
    assert place.commit(run) == committed  # a retried commit reads them again and finds its own output
    assert waves.delete_waves(run, env) == 1 + run.waves
    assert place.working_blobs() == []


def test_boundaries_inside_quoted_fields_are_realigned_and_only_moved_chunks_scored_again(env: dict[str, str]) -> None:
    data, expected = rows(2000, quoted_breaks=True)
    place = Place(env, data)
    run = place.plan(chunk_bytes=1000, wave_size=5)
    summaries = {w: place.score_wave(run, w) for w in range(run.waves)}
    assert any(s.misaligned for s in summaries.values())
    moved = waves.realign_run(run, env)
    assert moved and len(moved) < run.waves
    assert waves.realign_run(run, env) == moved  # a retried realignment moves the same boundaries to the same rows
    unscored = sum(len(waves.unscored_plan(run, w, env).chunks) for w in range(run.waves))
    assert 0 < unscored < run.chunks
    summaries |= {w: place.score_wave(run, w) for w in moved}
    assert not any(s.misaligned for s in summaries.values())
    assert place.commit(run).committed
    assert place.output() == expected


def test_a_commit_before_every_chunk_is_scored_names_the_chunks_to_score(env: dict[str, str]) -> None:
    data, expected = rows(500)
    place = Place(env, data)
    run = place.plan(chunk_bytes=1024, wave_size=4)
    for wave in range(run.waves - 1):
        place.score_wave(run, wave)
    early = place.commit(run)
    last = range((run.waves - 1) * 4, run.chunks)
    assert not early.committed and early.restage == tuple(last)
    assert not blobs.find_blob(place.out, place.name, env)
    place.score_wave(run, run.waves - 1)
    assert place.commit(run).committed and place.output() == expected


def test_chunks_whose_blocks_another_run_discarded_are_dropped_so_their_waves_score_them(env: dict[str, str]) -> None:
    data, expected = rows(800)
    place = Place(env, data)
    first = place.plan(1024, 4, run_id="first")
    second = place.plan(1024, 4, run_id="forced", requested="2026-11-29T10:00:00.000000Z")
    for run in (first, second):
        for wave in range(run.waves):
            place.score_wave(run, wave)
    assert place.commit(first).committed
    # The first run's commit discarded the blocks the forced run had staged: told which, not failed.
    lost = place.commit(second)
    assert not lost.committed and lost.restage == tuple(range(second.chunks))
    again = sorted({second.wave_of(i) for i in lost.restage})
    assert all(waves.unscored_plan(second, w, env).chunks for w in again)
    assert place.commit(second).restage == lost.restage  # a retried commit asks for the same chunks
    for wave in again:
        place.score_wave(second, wave)
    assert place.commit(second).committed
    assert place.output() == expected
    assert blobs.blob_info(place.out, place.name, env).metadata["run_id"] == "forced"


def test_a_wave_blob_deleted_under_a_run_is_a_clear_error(env: dict[str, str]) -> None:
    place = Place(env, rows(300)[0])
    run = place.plan(1024, 2)
    blobs.delete_blob(place.err, waves.wave_name(run, 1), env)
    with pytest.raises(Exception, match=r"working blob .*waves/000001.json is gone.*POST /api/scoring with force"):
        place.commit(run)


def test_results_kept_in_a_wave_blob_round_trip(env: dict[str, str]) -> None:
    place = Place(env, rows(100)[0])
    run = place.plan(1024, 64)
    result = ChunkResult(index=0, start=0, end=5, rows=2, output_block="YQ==", errors_part="p/000000.csv")
    waves.record_results(run, 0, [result], env)
    assert waves.load_wave(run, 0, env).results == {0: result}


def test_a_failed_runs_working_blobs_all_go(env: dict[str, str]) -> None:
    data = b"id,height\n" + b"".join(b"%d,%s\n" % (i, b"tall" if i % 50 == 0 else b"170") for i in range(400))
    place = Place(env, data)
    run = place.plan(1024, 2)
    place.score_wave(run, 0)  # its bad rows leave a part blob
    assert any(".parts/" in name for name in place.working_blobs())
    blobs_before = len(place.working_blobs())
    assert waves.delete_run(place.err, place.name, place.planned.plan.request, env) == blobs_before
    assert place.working_blobs() == []


def test_a_file_that_needs_more_blocks_than_a_blob_holds_is_refused_before_planning(env: dict[str, str]) -> None:
    place = Place(env, rows(5000)[0])
    with pytest.raises(ScoringError, match=r"at most 50000 \(one block per chunk") as refused:
        place.plan(chunk_bytes=1, wave_size=64)
    minimum = int(str(refused.value).rsplit(" ", 1)[1])
    size = len(rows(5000)[0])
    assert size // minimum < 50_000 <= size // (minimum - 1)  # the advice is the smallest size that fits
