"""The commit of a scoring run: the chunks' staged blocks become the predictions CSV (and errors CSV) at once.

Several runs may commit one output; each decides from what it sees and commits conditionally (see
commit_predictions), so the newest version's outcome wins without locks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from shared import blobs
from shared.errors import BlocksLostError, OutputChangedError, ScoringError
from shared.scoring.error_document import remove_error_document
from shared.scoring.errors_csv import shift_errors
from shared.scoring.payloads import ChunkPlan, ChunkResult, CommitResult, ScoringRequest

log = logging.getLogger(__name__)

# Rounds of "look at the output, commit if still right" when other runs keep committing in between.
COMMIT_ATTEMPTS = 5


def commit_predictions(
    plan: ChunkPlan,
    results: Sequence[ChunkResult],
    *,
    model_name: str,
    model_version: str,
    error_threshold: int = -1,
    env: Mapping[str, str] | None = None,
) -> CommitResult:
    """Commit the chunks' blocks in order: the predictions CSV (and errors CSV) appear at once, complete.

    Safe to run again: a blob already committed by this run is reported, not rewritten. Over the error
    threshold only the errors CSV is committed and ScoringError says why.

    Several runs may score one output at once (a forced run beside the first run of a version, events of two
    versions close together). Committing a block list discards every block of the blob that it does not list,
    so each run stages its blocks under ids of its own (`run_key`) and commits optimistically: it looks at the
    output, decides, and commits with If-Match on the ETag it saw (If-None-Match when there was no output).
    Storage enforces that nobody committed in between, with any number of workers and without locks that a
    lost worker could leave held. The decision:

    - the input no longer has this run's eTag (deleted or replaced): fail saying so; the newer version's run
      writes its output, and an older run can never overwrite it;
    - the output already holds this version from another run and this run is not forced, or it was forced before
      the run that wrote the output: nothing to write, the run ends "superseded" (committed false); otherwise a
      forced run writes its own predictions over it (force supersedes, whichever run ends first);
    - another run's commit discarded some of this run's staged blocks: `restage` lists those chunks, which the
      orchestrator scores again before committing again.
    """
    ordered = _ordered_results(plan, results)
    rows = sum(r.rows for r in ordered)
    bad = sum(r.bad_rows for r in ordered)
    result = CommitResult(
        output_container=plan.output_container,
        output_name=plan.output_name,
        rows=rows,
        bad_rows=bad,
        committed=True,
        errors_container=plan.errors_container if bad else "",
        errors_name=plan.errors_name if bad else "",
        model=f"{model_name} v{model_version}",
        chunks=len(ordered),
    )
    over = 0 <= error_threshold < bad
    reason = (
        f"{plan.request.source} has {bad} bad rows, more than SCORING_ERROR_THRESHOLD={error_threshold}: nothing "
        f"was committed to {plan.output_container}; the bad rows are listed in "
        f"{plan.errors_container}/{plan.errors_name}"
    )
    commit = _Commit(plan, ordered, result, _metadata(plan.request, result, model_name, model_version), env)
    for _ in range(COMMIT_ATTEMPTS):
        # Both outputs are looked at before the input is checked: a newer version's run can then commit neither
        # between this run's check and its (conditional) commits without making them fail.
        errors_before = blobs.find_blob(plan.errors_container, plan.errors_name, env)
        done = errors_before if over else blobs.find_blob(plan.output_container, plan.output_name, env)
        decided = commit.decide(done, over=over, reason=reason)
        if decided is not None:
            return decided
        try:
            return commit.write(done, errors_before, over=over, reason=reason)
        except (OutputChangedError, BlocksLostError) as err:
            log.info("%s: %s; looking again", plan.request.source, err)
    raise ScoringError(
        f"cannot commit {plan.output_container}/{plan.output_name}: other runs committed it {COMMIT_ATTEMPTS} "
        "times while this run tried; score the file again (POST /api/scoring with force)"
    )


def _ordered_results(plan: ChunkPlan, results: Sequence[ChunkResult]) -> list[ChunkResult]:
    """The results in the plan's chunk order; ScoringError unless there is exactly one per planned chunk range."""
    source = plan.request.source
    by_index = {r.index: r for r in results}
    missing = [c.index for c in plan.chunks if c.index not in by_index]
    if missing:
        raise ScoringError(f"cannot commit {source}: no result for chunks {missing}")
    ordered = [by_index[c.index] for c in plan.chunks]
    if any(r.misaligned or (r.start, r.end) != (c.start, c.end) for r, c in zip(ordered, plan.chunks, strict=True)):
        raise ScoringError(f"cannot commit {source}: chunk results do not match the (realigned) plan")
    return ordered


def _metadata(req: ScoringRequest, result: CommitResult, model_name: str, model_version: str) -> dict[str, str]:
    """What the committed blobs say about where they come from; later runs decide from it."""
    return {
        "source_etag": req.etag.strip('"'),  # as Event Grid's eTag and the HTTP API show it
        "rows": str(result.rows),
        "bad_rows": str(result.bad_rows),
        "model_name": _ascii(model_name),
        "model_version": _ascii(model_version),
        "run_id": _ascii(req.run_id),
        "run_key": req.run_key,
        "requested": req.requested,
    }


@dataclass(frozen=True)
class _Commit:
    """One run's commit: what it would write, deciding from what it sees each round."""

    plan: ChunkPlan
    ordered: Sequence[ChunkResult]
    result: CommitResult
    metadata: Mapping[str, str]
    env: Mapping[str, str] | None

    def decide(self, done: blobs.BlobInfo | None, *, over: bool, reason: str) -> CommitResult | None:
        """The outcome without writing (done before, input changed, superseded, blocks lost), or None: commit."""
        plan, req, env = self.plan, self.plan.request, self.env
        if done is not None and done.metadata.get("run_key") == req.run_key:
            log.info("%s was already committed by this run", req.source)
            if over:
                raise ScoringError(reason)
            return replace(self.result, etag=done.etag)
        current = blobs.find_blob(req.container, req.name, env)
        if current is None or current.etag != req.etag:
            _delete_parts(plan, self.ordered, env)
            raise blobs.source_changed(req.container, req.name, req.etag, env)
        if not over and done is not None and _superseded_by(done, req):
            _delete_parts(plan, self.ordered, env)
            other = done.metadata.get("run_id", "another run")
            log.info("%s: %s/%s already holds this version, from run %s", req.source, *_target(plan, over), other)
            return replace(
                self.result,
                committed=False,
                etag=done.etag,
                reason=f"superseded: {plan.output_container}/{plan.output_name} already holds the predictions of "
                f"this version (eTag {req.etag.strip(chr(34))}) from run {other}",
            )
        if not over:
            staged = blobs.uncommitted_blocks(plan.output_container, plan.output_name, env)
            lost = [r.index for r in self.ordered if r.output_block and r.output_block not in staged]
            if lost:
                log.info("%s: %s staged blocks were discarded by another run's commit", req.source, len(lost))
                return replace(self.result, committed=False, restage=tuple(lost))
        return None

    def write(
        self, done: blobs.BlobInfo | None, errors_before: blobs.BlobInfo | None, *, over: bool, reason: str
    ) -> CommitResult:
        """Commit the errors CSV, then (under the threshold) the predictions, each only if unchanged since seen.

        OutputChangedError / BlocksLostError: another run committed meanwhile, look again.
        """
        plan, req, env, result = self.plan, self.plan.request, self.env, self.result
        if result.bad_rows:
            _commit_errors(plan, self.ordered, self.metadata, errors_before, env)
        if over:
            _delete_parts(plan, self.ordered, env)
            raise ScoringError(reason)
        etag = blobs.commit_blocks(
            plan.output_container,
            plan.output_name,
            [r.output_block for r in self.ordered if r.output_block],
            content_type=plan.content_type,
            metadata=self.metadata,
            if_match=done.etag if done is not None else None,
            if_missing=done is None,
            env=env,
        )
        # The file scored: a document saying it could not be (this version's or an older one's) is wrong now.
        remove_error_document(req, container=plan.errors_container, env=env)
        if not result.bad_rows and errors_before is not None and _stale(errors_before, req, env):
            # Deleted only as it was seen: a newer version's run may be writing its own errors CSV by now.
            blobs.delete_blob(plan.errors_container, plan.errors_name, env, if_match=errors_before.etag)
        _delete_parts(plan, self.ordered, env)
        log.info(
            "committed %s/%s: %s rows, %s bad, model %s",
            plan.output_container,
            plan.output_name,
            result.rows,
            result.bad_rows,
            result.model,
        )
        return replace(result, etag=etag)


def _target(plan: ChunkPlan, over: bool) -> tuple[str, str]:
    return (plan.errors_container, plan.errors_name) if over else (plan.output_container, plan.output_name)


def _same_source(output: blobs.BlobInfo, request: ScoringRequest) -> bool:
    return output.metadata.get("source_etag", "").strip('"') == request.etag.strip('"')


def _stale(errors: blobs.BlobInfo, request: ScoringRequest, env: Mapping[str, str] | None) -> bool:
    """An errors CSV of another version, while the input still is this run's version: it describes an older one."""
    if _same_source(errors, request):
        return False
    current = blobs.find_blob(request.container, request.name, env)
    return current is not None and current.etag == request.etag


def _superseded_by(output: blobs.BlobInfo, request: ScoringRequest) -> bool:
    """Whether `output`, committed by another run, already is what this run would write, or should win over it.

    Same input version and this run not forced (its predictions would be the same); or both forced and the other
    one requested later (force means "the newest request's predictions", whichever run ends first).
    """
    if not _same_source(output, request):
        return False  # an older version's output (newer ones are refused earlier, by the input's ETag)
    return not request.force or output.metadata.get("requested", "") > request.requested


def _commit_errors(
    plan: ChunkPlan,
    ordered: Sequence[ChunkResult],
    metadata: Mapping[str, str],
    before: blobs.BlobInfo | None,
    env: Mapping[str, str] | None,
) -> None:
    """Stage the parts as blocks of the errors CSV and commit them, unless it changed since `before` was seen.

    Raises OutputChangedError / BlocksLostError for the caller to look again; parts stay until the end, so
    staging them again is cheap.
    """
    req = plan.request
    blocks: list[str] = []
    lines_before = 0
    for r in ordered:
        if r.errors_part:
            part = blobs.read_range(
                plan.errors_container,
                r.errors_part,
                0,
                blobs.blob_info(plan.errors_container, r.errors_part, env).size,
                env=env,
            )
            data = shift_errors(part, lines_before, header=not blocks)
            block = blobs.block_id(r.index, req.run_key)
            blobs.stage_block(plan.errors_container, plan.errors_name, block, data, env)
            blocks.append(block)
        lines_before += r.lines
    blobs.commit_blocks(
        plan.errors_container,
        plan.errors_name,
        blocks,
        metadata=metadata,
        if_match=before.etag if before is not None else None,
        if_missing=before is None,
        env=env,
    )


def _delete_parts(plan: ChunkPlan, ordered: Sequence[ChunkResult], env: Mapping[str, str] | None) -> None:
    for r in ordered:
        if r.errors_part:
            blobs.delete_blob(plan.errors_container, r.errors_part, env)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
