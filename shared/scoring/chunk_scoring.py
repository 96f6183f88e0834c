"""Batch scoring's blob-level steps below the orchestration, one per activity: plan a CSV blob's chunks, score a
chunk (read it, score its bytes with shared/scoring/chunk_bytes.py, stage its block and errors part); the commit is in
shared/scoring/commit.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from shared import blobs
from shared.errors import NotFoundError, ScoringError, SourceChangedError
from shared.scoring import chunk_slots
from shared.scoring.chunk_bytes import Predict, ScoredChunk, check_columns, score_chunk_bytes
from shared.scoring.csv_chunks import ChunkRange, plan_chunks, realign
from shared.scoring.events import control_character_reason
from shared.scoring.payloads import ChunkPlan, ChunkResult, ScoringRequest

log = logging.getLogger(__name__)

MAX_BLOCKS = 50_000  # blocks of one block blob (Azure Storage): one chunk is one block of the predictions


def minimum_chunk_bytes(size: int) -> int:
    """The smallest SCORING_CHUNK_BYTES that plan_scoring accepts for a blob of `size` bytes (every chunk but the
    last is at least that long, so there are at most MAX_BLOCKS)."""
    return size // MAX_BLOCKS + 1


def plan_scoring(
    request: ScoringRequest,
    *,
    chunk_bytes: int,
    output_container: str,
    errors_container: str,
    features: Sequence[str] = (),
    model_label: str = "model",
    env: Mapping[str, str] | None = None,
) -> ChunkPlan:
    """Read the blob's properties and header, check the model's columns, and plan line-aligned chunks."""
    problem = control_character_reason(request.name)
    if problem:
        raise ScoringError(problem)
    info = blobs.find_blob(request.container, request.name, env)
    if info is None and request.etag:
        raise SourceChangedError(
            f"{request.source} was deleted before it was scored (the run was for eTag {request.etag.strip(chr(34))})"
        )
    if info is None:
        raise NotFoundError(f"blob {request.source} does not exist")
    if request.etag and info.etag.strip('"') != request.etag.strip('"'):
        raise SourceChangedError(
            f"{request.source} was replaced by eTag {info.etag.strip(chr(34))} before it was scored (the run was "
            f"for eTag {request.etag.strip(chr(34))}); nothing was committed: the new version's own event scores it"
        )
    request = ScoringRequest(
        account=request.account,
        container=request.container,
        name=request.name,
        etag=info.etag,
        size=info.size,
        force=request.force,
        run_id=request.run_id,
        requested=request.requested,
    )

    if info.size // chunk_bytes >= MAX_BLOCKS:
        raise ScoringError(
            f"{request.source}: {info.size} bytes make about {info.size // chunk_bytes} chunks of "
            f"SCORING_CHUNK_BYTES={chunk_bytes}, but the predictions CSV can hold at most {MAX_BLOCKS} (one block "
            f"per chunk, Azure's limit for a block blob): set SCORING_CHUNK_BYTES to at least "
            f"{minimum_chunk_bytes(info.size)}"
        )

    def read(start: int, end: int) -> bytes:
        return blobs.read_range(request.container, request.name, start, end, etag=info.etag, env=env)

    header, chunks = plan_chunks(read, info.size, chunk_bytes, request.source)
    if features:
        check_columns(header, features, request.source, model_label)
    for container in {output_container, errors_container}:
        blobs.ensure_container(container, env)
    log.info("planned %s chunks of %s (%s bytes, ETag %s)", len(chunks), request.source, info.size, info.etag)
    return ChunkPlan(
        request=request,
        header=header,
        chunks=tuple(chunks),
        output_container=output_container,
        output_name=request.name,
        errors_container=errors_container,
        errors_name=request.name,
        content_type="text/csv",
    )


def realign_plan(plan: ChunkPlan, results: Sequence[ChunkResult], env: Mapping[str, str] | None = None) -> ChunkPlan:
    """The plan with boundaries that fell inside quoted fields moved to row starts (see csv_chunks)."""
    by_index = {r.index: r for r in results}
    parities = [by_index[c.index].quote_parity for c in plan.chunks]
    req = plan.request

    def read(start: int, end: int) -> bytes:
        return blobs.read_range(req.container, req.name, start, end, etag=req.etag, env=env)

    chunks = realign(read, req.size, plan.chunks, parities)
    log.info("realigned the chunks of %s around quoted line breaks", req.source)
    return ChunkPlan(**{**plan.__dict__, "chunks": tuple(chunks)})


def _part_name(plan: ChunkPlan, index: int) -> str:
    return f"{plan.errors_name}.parts/{plan.request.run_key}/{index:06d}.csv"


def score_chunk(
    plan: ChunkPlan,
    index: int,
    *,
    features: Sequence[str],
    prediction_column: str,
    predict: Predict,
    model_label: str = "model",
    env: Mapping[str, str] | None = None,
) -> ChunkResult:
    """Score chunk `index`: stage its output block (id from the index), write its bad rows to a part blob."""
    # The orchestrator may pass a plan holding only this chunk (small activity inputs): look it up by index.
    chunk: ChunkRange | None = next((c for c in plan.chunks if c.index == index), None)
    if chunk is None:
        raise ScoringError(f"chunk {index} is not part of the plan of {plan.request.source}")
    req = plan.request
    result = ChunkResult(index=index, start=chunk.start, end=chunk.end)
    if chunk.size == 0:
        return result
    gate = chunk_slots.gate(env)
    # The slot covers everything that holds the chunk's bytes: the read, the scoring and the staged block.
    with gate.slot(f"chunk {index} of {req.source}") as busy:
        data = blobs.read_range(req.container, req.name, chunk.start, chunk.end, etag=req.etag, env=env)
        scored = score_chunk_bytes(
            data,
            header=plan.header,
            first=chunk.start == 0,
            features=features,
            prediction_column=prediction_column,
            predict=predict,
            source=req.source,
            offset=chunk.start,
            model_label=model_label,
        )
        del data
        if scored.misaligned:
            log.info("chunk %s of %s starts or ends inside a quoted field", index, req.source)
            return replace(result, lines=scored.lines, quote_parity=1, misaligned=True)
        result = _stage(plan, result, scored, env)
    log.info(
        "scored chunk %s of %s: %s rows, %s bad (%s of %s chunk slots of this process busy)",
        index,
        req.source,
        scored.rows,
        scored.bad_rows,
        busy,
        gate.limit,
    )
    return result


def _stage(plan: ChunkPlan, result: ChunkResult, scored: ScoredChunk, env: Mapping[str, str] | None) -> ChunkResult:
    """Stage a scored chunk's output as its block of the predictions CSV and its bad rows as a part blob."""
    block = blobs.block_id(result.index, plan.request.run_key)
    if scored.output:
        blobs.stage_block(plan.output_container, plan.output_name, block, scored.output, env)
    part = ""
    if scored.errors_csv:
        part = _part_name(plan, result.index)
        blobs.upload(plan.errors_container, part, scored.errors_csv, env=env)
    return replace(
        result,
        rows=scored.rows,
        bad_rows=scored.bad_rows,
        lines=scored.lines,
        quote_parity=0,
        output_block=block if scored.output else "",
        output_bytes=len(scored.output),
        errors_part=part,
    )
