"""What crosses the scoring orchestration's boundaries: blob ids, ranges, counts, block ids; never data.

Every payload is a `shared.payloads.Payload` dataclass: the trigger, the orchestrations and the activities pass
these, never dicts with string keys. A large file's plan, chunk ranges and results stay in the run's blobs
(shared/scoring/waves.py); orchestrations pass a reference to them (`RunRef`) and per-wave counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

from shared.payloads import Payload
from shared.scoring.csv_chunks import ChunkRange, CsvHeader

Trace = Mapping[str, str]  # W3C trace context of the trigger: every activity's span joins the run's trace


@dataclass(frozen=True)
class ScoringRequest(Payload):
    """One input blob version to score; `run_id` (the orchestration id) keeps concurrent runs apart."""

    account: str
    container: str
    name: str
    etag: str
    size: int
    force: bool = False
    run_id: str = ""
    # When a forced run was requested (UTC, fixed-width text, so it sorts): of two forced runs of one version,
    # the later request's predictions are the ones that stay.
    requested: str = ""

    @property
    def source(self) -> str:
        return f"{self.container}/{self.name}"

    @property
    def run_key(self) -> str:
        """16 hex chars naming this run's staged blocks and parts: same request -> same key."""
        text = f"{self.account}/{self.container}/{self.name}@{self.etag}#{self.run_id}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ChunkPlan(Payload):
    """The header and the byte ranges of one input blob, plus where the outputs go."""

    request: ScoringRequest
    header: CsvHeader
    chunks: tuple[ChunkRange, ...]
    output_container: str
    output_name: str
    errors_container: str
    errors_name: str
    content_type: str = "text/csv"
    # The model chosen when the run was planned: every chunk must be scored by it, and the commit names it.
    model_name: str = ""
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        # Chunks travel as [index, start, end] triples rather than objects: a third of the bytes per chunk.
        return {**super().to_dict(), "chunks": [[c.index, c.start, c.end] for c in self.chunks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        chunks = tuple(ChunkRange(int(i), int(s), int(e)) for i, s, e in data["chunks"])
        return super().from_dict({**data, "chunks": chunks})

    def with_chunks(self, chunks: Sequence[ChunkRange]) -> ChunkPlan:
        """The same plan holding only `chunks`: what one activity or wave needs, and no more."""
        return replace(self, chunks=tuple(chunks))


@dataclass(frozen=True)
class ChunkResult(Payload):
    """What scoring one chunk produced; `misaligned` means it must be realigned and scored again.

    `lines` counts the line breaks in the chunk's bytes, so the commit step can turn the chunk-relative line
    numbers of its bad rows (kept in the part blob `errors_part`) into input line numbers.
    """

    index: int
    start: int
    end: int
    rows: int = 0
    bad_rows: int = 0
    lines: int = 0
    quote_parity: int = 0
    output_block: str = ""
    output_bytes: int = 0
    errors_part: str = ""
    misaligned: bool = False

    def scored(self, chunk: ChunkRange) -> bool:
        """Whether this result is the scoring of `chunk` as it is now planned (not of a range moved since)."""
        return (self.index, self.start, self.end) == (chunk.index, chunk.start, chunk.end)


@dataclass(frozen=True)
class CommitResult(Payload):
    """The committed outcome of a run: where the predictions (or only the errors) went, and the counts."""

    output_container: str
    output_name: str
    rows: int
    bad_rows: int
    committed: bool
    errors_container: str = ""
    errors_name: str = ""
    etag: str = ""
    model: str = ""
    reason: str = ""
    chunks: int = 0
    # Chunks whose staged blocks another run's commit discarded: score them again, then commit again.
    restage: tuple[int, ...] = ()


# --- the orchestrations' own payloads -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringRun(Payload):
    """The scoring orchestration's input, built by the trigger from the request and the settings."""

    request: ScoringRequest
    parallel: int = 4  # chunks of this file scored at once (SCORING_PARALLEL_CHUNKS)
    wave_size: int = 64  # chunks per wave (SCORING_WAVE_SIZE): each wave's results are kept in one blob
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class PlanTask(Payload):
    """Input of `plan_scoring_chunks`: plan the request's chunks and keep them in wave blobs of `wave_size`."""

    request: ScoringRequest
    wave_size: int
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class RunRef(Payload):
    """Where a planned run's plan and waves are (shared/scoring/waves.py) and how many: what orchestrations pass
    to waves and activities, a few hundred bytes whatever the file's size or its name's length."""

    errors_container: str
    run_key: str
    chunks: int
    wave_size: int
    run_id: str = ""  # the scoring orchestration's id, for the activities' spans and logs

    @property
    def waves(self) -> int:
        return max(1, -(-self.chunks // self.wave_size))

    def wave_of(self, index: int) -> int:
        return index // self.wave_size


@dataclass(frozen=True)
class PlannedRun(Payload):
    """The planner's answer: the plan without its chunk ranges (they are in the run's wave blobs), and how many
    chunks in waves of how many. The scoring orchestration keeps it; its waves get only `ref`."""

    plan: ChunkPlan
    chunks: int
    wave_size: int

    @property
    def ref(self) -> RunRef:
        request = self.plan.request
        return RunRef(self.plan.errors_container, request.run_key, self.chunks, self.wave_size, request.run_id)


@dataclass(frozen=True)
class RunTask(Payload):
    """Input of the activities that work on a whole planned run (realign, commit, delete)."""

    run: RunRef
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class WaveTask(Payload):
    """One wave of a run: score its chunks that have no current result (the wave orchestration's input, and its
    loading activity's)."""

    run: RunRef
    wave: int
    parallel: int = 4
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkTask(Payload):
    """Input of `score_chunk`: a plan holding only this chunk."""

    plan: ChunkPlan
    index: int
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class WaveResults(Payload):
    """Input of `save_scoring_wave`: the results of the chunks a wave scored, to keep in its blob."""

    run: RunRef
    wave: int
    results: tuple[ChunkResult, ...]
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class WaveSummary(Payload):
    """What a wave's blob holds, counted: all an orchestration keeps of a wave."""

    wave: int
    chunks: int
    scored: int  # chunks with a current result
    rows: int = 0
    bad_rows: int = 0
    misaligned: int = 0


@dataclass(frozen=True)
class RealignedWaves(Payload):
    """Output of the realigning `plan_scoring_chunks`: the waves whose chunk ranges moved (to score again)."""

    waves: tuple[int, ...] = ()


@dataclass(frozen=True)
class FailedRun(Payload):
    """Input of `record_scoring_error`: the run that failed and why."""

    request: ScoringRequest
    error: str
    trace: Trace = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorDocument(Payload):
    """Output of `record_scoring_error`: where the error document went ("" when none was written)."""

    error_document: str = ""


@dataclass(frozen=True)
class ActivityRefusal(Payload):
    """What an activity returns instead of its payload for a failure the same input always reproduces (bad input):
    not retried, the run fails with this message."""

    error: str
    error_type: str = ""


@dataclass(frozen=True)
class ScoringOutcome(Payload):
    """The scoring orchestration's output: the source, when it ran, and the commit's outcome."""

    source: str
    source_etag: str
    chunks: int
    started: str
    finished: str
    commit: CommitResult

    def to_dict(self) -> dict[str, Any]:
        # The commit's fields sit beside the run's, flat, as the status output has always shown them.
        head = {f: getattr(self, f) for f in ("source", "source_etag", "chunks", "started", "finished")}
        return head | self.commit.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return super().from_dict({**data, "commit": dict(data)})  # the commit's fields sit in the same dict
