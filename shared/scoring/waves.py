"""A run's plan, chunk ranges and chunk results, kept in blobs, so that no orchestration holds them all.

A 5 GB file of 1 MiB chunks has about 4,800 chunks: their ranges and results (about 300 bytes each) would make
one orchestration's history grow past a megabyte and the commit's input past 256 KB. So the planner writes the
plan (header, outputs, model) to `<errors container>/.runs/<run key>/plan.json` and wave `w` (chunks
`w * wave_size` up to `(w + 1) * wave_size`) to `.../waves/<w>.json`; orchestrations pass a `RunRef` (container,
run key, counts: a few hundred bytes whatever the file or its name) and keep per-wave counts (`WaveSummary`). A
wave orchestration scores the chunks of its blob that have no current result and saves their results there;
realigning and committing read every wave. The run's end deletes them (`delete_run`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared import blobs
from shared.errors import NotFoundError, ScoringError
from shared.scoring.chunk_scoring import MAX_BLOCKS, minimum_chunk_bytes, realign_plan
from shared.scoring.commit import commit_predictions
from shared.scoring.csv_chunks import ChunkRange
from shared.scoring.payloads import (
    ChunkPlan,
    ChunkResult,
    CommitResult,
    PlannedRun,
    RunRef,
    ScoringRequest,
    WaveSummary,
)

CONTENT_TYPE = "application/json"


def run_prefix(run_key: str) -> str:
    """Where a run keeps its plan and waves in the errors container."""
    return f".runs/{run_key}/"


def plan_name(run: RunRef) -> str:
    return f"{run_prefix(run.run_key)}plan.json"


def wave_name(run: RunRef, wave: int) -> str:
    return f"{run_prefix(run.run_key)}waves/{wave:06d}.json"


@dataclass
class Wave:
    """One wave's chunk ranges as now planned and the latest result of each chunk (by index)."""

    number: int
    chunks: list[ChunkRange]
    results: dict[int, ChunkResult] = field(default_factory=dict)

    def unscored(self) -> list[ChunkRange]:
        """Chunks without a result for their current range: never scored, moved by realignment, or dropped
        because another run's commit discarded their block."""
        return [c for c in self.chunks if not (r := self.results.get(c.index)) or not r.scored(c)]

    def current(self) -> list[ChunkResult]:
        """The results of the current ranges, in chunk order."""
        return [r for c in self.chunks if (r := self.results.get(c.index)) is not None and r.scored(c)]

    def summary(self) -> WaveSummary:
        current = self.current()
        return WaveSummary(
            wave=self.number,
            chunks=len(self.chunks),
            scored=len(current),
            rows=sum(r.rows for r in current),
            bad_rows=sum(r.bad_rows for r in current),
            misaligned=sum(r.misaligned for r in current),
        )

    def encode(self) -> bytes:
        return json.dumps(
            {
                "chunks": [[c.index, c.start, c.end] for c in self.chunks],
                "results": [r.to_dict() for r in self.results.values()],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, number: int, data: bytes) -> Wave:
        body = json.loads(data)
        results = (ChunkResult.from_dict(r) for r in body["results"])
        return cls(number, [ChunkRange(*map(int, c)) for c in body["chunks"]], {r.index: r for r in results})


def save_plan(plan: ChunkPlan, wave_size: int, env: Mapping[str, str] | None = None) -> PlannedRun:
    """Write the plan (without its chunks) and its chunk ranges as waves of `wave_size`; the plan as the
    orchestrations hold it."""
    chunks = list(plan.chunks)
    if len(chunks) > MAX_BLOCKS:  # plan_scoring refuses such a blob before planning; this is the exact count
        raise ScoringError(
            f"{plan.request.source}: {len(chunks)} chunks, but the predictions CSV can hold at most {MAX_BLOCKS} (one "
            f"block per chunk): set SCORING_CHUNK_BYTES to at least {minimum_chunk_bytes(plan.request.size)}"
        )
    planned = PlannedRun(plan=plan.with_chunks(()), chunks=len(chunks), wave_size=max(1, wave_size))
    run = planned.ref
    body = json.dumps(planned.plan.to_dict(), separators=(",", ":")).encode()
    blobs.upload(run.errors_container, plan_name(run), body, content_type=CONTENT_TYPE, env=env)
    for number in range(run.waves):
        save_wave(run, Wave(number, chunks[number * run.wave_size : (number + 1) * run.wave_size]), env)
    return planned


def load_plan(run: RunRef, env: Mapping[str, str] | None = None) -> ChunkPlan:
    """The run's plan, without its chunks."""
    return ChunkPlan.from_dict(json.loads(_read(run, plan_name(run), env)))


def save_wave(run: RunRef, wave: Wave, env: Mapping[str, str] | None = None) -> None:
    blobs.upload(run.errors_container, wave_name(run, wave.number), wave.encode(), content_type=CONTENT_TYPE, env=env)


def _read(run: RunRef, name: str, env: Mapping[str, str] | None) -> bytes:
    try:
        return blobs.read_blob(run.errors_container, name, env)
    except NotFoundError:
        raise _gone(run, name) from None


def _gone(run: RunRef, name: str) -> ScoringError:
    return ScoringError(
        f"the run's working blob {run.errors_container}/{name} is gone (deleted while the run went on?); score the "
        "file again (POST /api/scoring with force)"
    )


def load_wave(run: RunRef, number: int, env: Mapping[str, str] | None = None) -> Wave:
    if not 0 <= number < run.waves:
        raise ScoringError(f"wave {number} is not one of the run's {run.waves} waves")
    return Wave.decode(number, _read(run, wave_name(run, number), env))


def load_waves(run: RunRef, env: Mapping[str, str] | None = None) -> list[Wave]:
    """Every wave of the run, in order (read a few at once: each is one round trip)."""
    names = [wave_name(run, n) for n in range(run.waves)]
    found = blobs.read_blobs(run.errors_container, names, env)
    missing = [name for name in names if found[name] is None]
    if missing:
        raise _gone(run, missing[0])
    return [Wave.decode(n, found[name] or b"") for n, name in enumerate(names)]


def unscored_plan(run: RunRef, number: int, env: Mapping[str, str] | None = None) -> ChunkPlan:
    """The plan holding the chunks of wave `number` that have no current result: what the wave must score."""
    return load_plan(run, env).with_chunks(load_wave(run, number, env).unscored())


def record_results(
    run: RunRef, number: int, results: Sequence[ChunkResult], env: Mapping[str, str] | None = None
) -> WaveSummary:
    """Keep the results a wave scored (replacing earlier results of those chunks); the wave's counts."""
    wave = load_wave(run, number, env)
    wave.results.update({r.index: r for r in results})
    save_wave(run, wave, env)
    return wave.summary()


def realign_run(run: RunRef, env: Mapping[str, str] | None = None) -> list[int]:
    """Move the boundaries that fell inside quoted fields (see csv_chunks.realign); the waves holding moved chunks,
    which must be scored again.

    Computed from each chunk's latest result (its range and quote parity as scored), not from the stored ranges:
    a retry after some waves were saved computes the same ranges, so the waves never disagree on a boundary.
    """
    plan, waves = load_plan(run, env), load_waves(run, env)
    latest = [w.results.get(c.index) for w in waves for c in w.chunks]
    scored = [r for r in latest if r is not None]
    if len(scored) != len(latest):
        raise ScoringError(f"{plan.request.source}: cannot realign the chunk boundaries before every chunk was scored")
    as_scored = plan.with_chunks([ChunkRange(r.index, r.start, r.end) for r in scored])
    chunks = realign_plan(as_scored, scored, env).chunks
    for wave in waves:
        first = wave.number * run.wave_size
        moved = list(chunks[first : first + len(wave.chunks)])
        if moved != wave.chunks:
            wave.chunks = moved
            save_wave(run, wave, env)
    return sorted({run.wave_of(c.index) for c, r in zip(chunks, scored, strict=True) if not r.scored(c)})


def commit_run(
    run: RunRef, *, error_threshold: int, plan: ChunkPlan | None = None, env: Mapping[str, str] | None = None
) -> CommitResult:
    """Commit the run's chunks from its waves (shared/scoring/commit.py), or say which chunks to score first.

    `restage` lists the chunks without a current result and those whose staged blocks another run's commit
    discarded; the latter's results are dropped here, so their waves score them again.
    """
    waves = load_waves(run, env)
    plan = (plan or load_plan(run, env)).with_chunks([c for w in waves for c in w.chunks])
    unscored = [c.index for w in waves for c in w.unscored()]
    if unscored:
        return CommitResult(plan.output_container, plan.output_name, 0, 0, committed=False, restage=tuple(unscored))
    results = [r for w in waves for r in w.current()]
    result = commit_predictions(
        plan,
        results,
        model_name=plan.model_name,
        model_version=plan.model_version,
        error_threshold=error_threshold,
        env=env,
    )
    lost = set(result.restage)
    for wave in waves:
        if lost & wave.results.keys():
            wave.results = {i: r for i, r in wave.results.items() if i not in lost}
            save_wave(run, wave, env)
    return result


def delete_waves(run: RunRef, env: Mapping[str, str] | None = None) -> int:
    """Delete the run's plan and waves (once the orchestration has its commit's outcome); how many blobs."""
    names = blobs.list_names(run.errors_container, run_prefix(run.run_key), env)
    for name in names:
        blobs.delete_blob(run.errors_container, name, env)
    return len(names)


def delete_run(
    errors_container: str, errors_name: str, request: ScoringRequest, env: Mapping[str, str] | None = None
) -> int:
    """Delete a run's working blobs (plan, waves, and the bad-row parts a failed run leaves); how many there were."""
    names = [
        *blobs.list_names(errors_container, run_prefix(request.run_key), env),
        *blobs.list_names(errors_container, f"{errors_name}.parts/{request.run_key}/", env),
    ]
    for name in names:
        blobs.delete_blob(errors_container, name, env)
    return len(names)
