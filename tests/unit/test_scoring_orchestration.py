"""The scoring orchestrations stepped through azure-functions-durable's replay with scripted activity answers.

`FakeRun` answers the activities as shared/scoring/waves.py does against storage, in memory, with the typed
payloads, so the control flow (waves, realignment, restaging, failures) and the size of every history can be
checked in seconds, without an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from devhost.index import index_app
from shared import names
from shared.scoring.csv_chunks import ChunkRange, CsvHeader
from shared.scoring.payloads import (
    ChunkPlan,
    ChunkResult,
    ChunkTask,
    CommitResult,
    ErrorDocument,
    FailedRun,
    PlannedRun,
    PlanTask,
    RealignedWaves,
    RunRef,
    RunTask,
    ScoringRequest,
    ScoringRun,
    WaveResults,
    WaveSummary,
    WaveTask,
)
from tests.durable_history import START, ActivityError, OrchestrationReplay

CHUNK = 1024 * 1024
HEADER = CsvHeader(columns=("id", "height", "name", "email"), line_ending="\n", bom_length=0, header_length=21)


@pytest.fixture(scope="module")
def handles() -> dict[str, Callable[..., Any]]:
    import azure.durable_functions as df

    from orchestrations import scoring

    app = df.DFApp()
    app.register_functions(scoring.bp)
    return {spec.name: spec.func for spec in index_app(app).by_type("orchestrationTrigger")}


def request(**overrides: Any) -> ScoringRequest:
    fields = {"account": "devstoreaccount1", "container": "incoming", "name": "big.csv", "etag": "0x1", "size": 0}
    return ScoringRequest(**{**fields, **overrides})


def run_input(wave_size: int = 64, parallel: int = 4) -> dict[str, Any]:
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    return ScoringRun(request=request(), parallel=parallel, wave_size=wave_size, trace=trace).to_dict()


@dataclass
class FakeRun:
    """The activities of one run, answered in memory as shared/scoring/waves.py answers them from blobs."""

    chunks: int
    misaligned: set[int] = field(default_factory=set)  # chunks whose first scoring ends inside a quoted field
    lost_once: set[int] = field(default_factory=set)  # chunks whose block the first commit finds discarded
    ranges: dict[int, ChunkRange] = field(default_factory=dict)
    results: dict[int, ChunkResult] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)
    deleted: bool = False
    plan: ChunkPlan | None = None  # as the planner stored it (waves.load_plan reads it back)

    def respond(self, name: str, payload: Any) -> Any:
        self.calls.append(name)
        answer: Callable[[Any], Any] = getattr(self, name)
        return answer(payload)

    def plan_scoring_chunks(self, payload: Any) -> Any:
        task = PlanTask.from_dict(payload)
        self.ranges = {i: ChunkRange(i, i * CHUNK, (i + 1) * CHUNK) for i in range(self.chunks)}
        self.plan = plan = ChunkPlan(
            request=replace(task.request, etag='"0x1"', size=self.chunks * CHUNK),
            header=HEADER,
            chunks=(),
            output_container="predictions",
            output_name=task.request.name,
            errors_container="scoring-errors",
            errors_name=task.request.name,
            model_name="height-weight",
            model_version="1",
        )
        return PlannedRun(plan=plan, chunks=self.chunks, wave_size=task.wave_size).to_dict()

    def _wave(self, run: RunRef, wave: int) -> list[ChunkRange]:
        return [self.ranges[i] for i in range(wave * run.wave_size, min(self.chunks, (wave + 1) * run.wave_size))]

    def load_scoring_wave(self, payload: Any) -> Any:
        task = WaveTask.from_dict(payload)
        todo = [c for c in self._wave(task.run, task.wave) if not (r := self.results.get(c.index)) or not r.scored(c)]
        assert self.plan is not None and task.run.run_key == self.plan.request.run_key
        return self.plan.with_chunks(todo).to_dict()

    def score_chunk(self, payload: Any) -> Any:
        task = ChunkTask.from_dict(payload)
        [chunk] = task.plan.chunks
        assert chunk.index == task.index
        self.scored.append(task.index)
        as_planned = ChunkRange(task.index, task.index * CHUNK, (task.index + 1) * CHUNK)
        odd = task.index in self.misaligned and chunk == as_planned  # realigned, it ends at a row end
        block = f"block-{task.index:06d}"
        return ChunkResult(
            index=chunk.index, start=chunk.start, end=chunk.end, rows=0 if odd else 20_000, lines=20_000,
            quote_parity=int(odd), output_block="" if odd else block, output_bytes=0 if odd else CHUNK, misaligned=odd,
        ).to_dict()  # fmt: skip

    def save_scoring_wave(self, payload: Any) -> Any:
        task = WaveResults.from_dict(payload)
        self.results.update({r.index: r for r in task.results})
        current = [r for c in self._wave(task.run, task.wave) if (r := self.results.get(c.index)) and r.scored(c)]
        return WaveSummary(
            wave=task.wave,
            chunks=len(self._wave(task.run, task.wave)),
            scored=len(current),
            rows=sum(r.rows for r in current),
            misaligned=sum(r.misaligned for r in current),
        ).to_dict()

    def realign_scoring_chunks(self, payload: Any) -> Any:
        run = RunTask.from_dict(payload).run
        moved: set[int] = set()
        for i in sorted(self.misaligned):  # the boundary after chunk i moves 10 bytes on
            self.ranges[i] = replace(self.ranges[i], end=self.ranges[i].end + 10)
            self.ranges[i + 1] = replace(self.ranges[i + 1], start=self.ranges[i + 1].start + 10)
            moved |= {run.wave_of(i), run.wave_of(i + 1)}
        return RealignedWaves(waves=tuple(sorted(moved))).to_dict()

    def commit_predictions(self, payload: Any) -> Any:
        RunTask.from_dict(payload)
        plan = self.plan
        assert plan is not None
        lost, self.lost_once = sorted(self.lost_once), set()
        for index in lost:
            del self.results[index]
        rows = sum(r.rows for r in self.results.values())
        commit = CommitResult(plan.output_container, plan.output_name, rows, 0, committed=not lost, chunks=self.chunks)
        return replace(commit, model="height-weight v1", etag='"0x9"', restage=tuple(lost)).to_dict()

    def delete_scoring_waves(self, payload: Any) -> Any:
        RunTask.from_dict(payload)
        self.deleted = True
        return {"deleted": 1}

    def record_scoring_error(self, payload: Any) -> Any:
        failed = FailedRun.from_dict(payload)
        return ErrorDocument(error_document=f"scoring-errors/{failed.request.name}.error.json").to_dict()


def test_a_small_file_is_scored_in_one_wave_without_sub_orchestrations(handles: dict[str, Callable[..., Any]]) -> None:
    fake = FakeRun(chunks=6)
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(), instance_id="score-1")
    run.run_to_end(fake.respond, handles)
    assert run.children == []
    assert sorted(fake.scored) == list(range(6))
    assert fake.deleted
    assert run.output == {
        "source": "incoming/big.csv",
        "source_etag": "0x1",
        "chunks": 6,
        "started": START.isoformat(),
        "finished": START.isoformat(),
        "output_container": "predictions",
        "output_name": "big.csv",
        "rows": 120_000,
        "bad_rows": 0,
        "committed": True,
        "errors_container": "",
        "errors_name": "",
        "etag": '"0x9"',
        "model": "height-weight v1",
        "reason": "",
        "restage": [],
    }
    assert run.custom_status == {"stage": "done", "chunks_done": 6, "chunks_total": 6, "rows": 120_000}


def test_every_activity_gets_the_run_id_and_the_trace(handles: dict[str, Callable[..., Any]]) -> None:
    seen: list[dict[str, Any]] = []
    fake = FakeRun(chunks=3)

    def respond(name: str, payload: Any) -> Any:
        seen.append(payload)
        return fake.respond(name, payload)

    OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(), instance_id="score-7").run_to_end(respond)
    assert PlanTask.from_dict(seen[0]).request.run_id == "score-7"
    assert all(p["trace"] == run_input()["trace"] for p in seen)


def test_a_large_file_goes_wave_by_wave_through_sub_orchestrations(handles: dict[str, Callable[..., Any]]) -> None:
    fake = FakeRun(chunks=5)
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(wave_size=2), instance_id="score-2")
    run.run_to_end(fake.respond, handles)
    assert [c.instance_id for c in run.children] == ["score-2:score:0", "score-2:score:1", "score-2:score:2"]
    assert sorted(fake.scored) == list(range(5))
    assert run.output["chunks"] == 5 and run.output["rows"] == 100_000
    assert fake.calls.count(names.COMMIT_PREDICTIONS) == 1


def test_boundaries_inside_quoted_fields_are_moved_and_only_their_chunks_scored_again(
    handles: dict[str, Callable[..., Any]],
) -> None:
    fake = FakeRun(chunks=9, misaligned={4})
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(wave_size=3), instance_id="score-3")
    run.run_to_end(fake.respond, handles)
    assert fake.calls.count(names.REALIGN_SCORING_CHUNKS) == 1
    assert sorted(fake.scored) == sorted([*range(9), 4, 5])  # chunk 4 ended, chunk 5 began, inside the quoted field
    assert [c.instance_id for c in run.children][-1:] == ["score-3:realign1:1"]
    assert run.output["rows"] == 9 * 20_000


def test_a_boundary_that_cannot_be_aligned_fails_the_run_with_an_error_document(
    handles: dict[str, Callable[..., Any]],
) -> None:
    fake = FakeRun(chunks=4, misaligned={1})
    fake.realign_scoring_chunks = lambda payload: RealignedWaves().to_dict()  # type: ignore[method-assign]
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(), instance_id="score-4")
    run.run_to_end(fake.respond, handles)
    assert run.failure is not None and "could not align chunk boundaries with CSV rows" in run.failure
    assert run.custom_status == {"stage": "failed", "error_document": "scoring-errors/big.csv.error.json"}
    assert names.COMMIT_PREDICTIONS not in fake.calls


def test_chunks_whose_blocks_another_commit_discarded_are_scored_again_then_committed(
    handles: dict[str, Callable[..., Any]],
) -> None:
    fake = FakeRun(chunks=7, lost_once={1, 6})
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(wave_size=3), instance_id="score-5")
    run.run_to_end(fake.respond, handles)
    assert fake.calls.count(names.COMMIT_PREDICTIONS) == 2
    assert sorted(fake.scored) == sorted([*range(7), 1, 6])
    assert [c.instance_id for c in run.children][-2:] == ["score-5:restage1:0", "score-5:restage1:2"]
    assert run.output["committed"] is True and run.output["rows"] == 7 * 20_000


def test_a_chunk_that_keeps_failing_fails_the_run_fast_and_leaves_an_error_document(
    handles: dict[str, Callable[..., Any]],
) -> None:
    fake = FakeRun(chunks=3)
    attempts: list[int] = []

    def respond(name: str, payload: Any) -> Any:
        if name == names.SCORE_CHUNK and payload["index"] == 0:
            attempts.append(0)
            raise ActivityError("disk full", "OSError")
        return fake.respond(name, payload)

    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input(), instance_id="score-6")
    run.run_to_end(respond, handles)
    assert len(attempts) == 3  # retried, then the run fails
    assert run.failure is not None
    assert run.failure.startswith("Activity function 'score_chunk' failed: OSError: disk full")
    assert run.custom_status == {"stage": "failed", "error_document": "scoring-errors/big.csv.error.json"}
    assert not fake.deleted  # the run's working blobs go with the error document's activity


def test_an_input_problem_found_by_the_planner_fails_the_run_with_its_message(
    handles: dict[str, Callable[..., Any]],
) -> None:
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], run_input())
    [plan] = run.step()
    run.complete(plan, {"error": "incoming/big.csv: no header row", "error_type": "ScoringError"})
    [record] = run.step()
    assert record.name == names.RECORD_SCORING_ERROR
    assert FailedRun.from_dict(record.input).error == "incoming/big.csv: no header row"
    run.fail(record, "storage unreachable", "StorageError")  # best effort: the run still reports its own error
    assert run.step() == []
    assert run.failure == "incoming/big.csv: no header row"


def test_histories_and_messages_stay_within_the_bounds_at_5_gb(handles: dict[str, Callable[..., Any]]) -> None:
    """Issue 20: a 5 GB file in 1 MiB chunks (about 4,800): no history above 1 MB, no message above 256 KB, in the
    run or in any of its waves; the run's own history grows by about 1 KB a wave, nothing a chunk."""
    chunks = 4_800
    fake = FakeRun(chunks=chunks)
    # A whole wave scored at once: the same events as 4 at a time, in a sixteenth of the replays.
    start = run_input(wave_size=64, parallel=64)
    run = OrchestrationReplay(handles[names.SCORING_ORCHESTRATOR], start, instance_id="score-big")
    run.run_to_end(fake.respond, handles, max_episodes=100_000)
    assert run.output["chunks"] == chunks and len(fake.scored) == chunks
    tree = run.tree()
    assert len(tree) == 1 + -(-chunks // 64)
    largest_history = max(r.history_bytes() for r in tree)
    largest_message = max(r.largest_message_bytes() for r in tree)
    assert largest_history < 1024 * 1024, f"a history of {largest_history} bytes"
    assert largest_message < 256 * 1024, f"a message of {largest_message} bytes"
    # About 1 KB a wave, whatever the blob's name: at Azure's limit of 50,000 blocks (782 waves), under 1 MB.
    per_wave = (run.history_bytes() - 16_384) / len(run.children)
    assert per_wave < 1_200 and 16_384 + per_wave * 50_000 / 64 < 1024 * 1024


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("256", True), ("257", False), ("0", False)])
def test_the_wave_size_is_bounded_so_a_wave_stays_small(value: str, ok: bool) -> None:
    from shared.errors import SettingsError
    from shared.settings import SCORING_WAVE_SIZE

    if ok:
        assert SCORING_WAVE_SIZE.get({"SCORING_WAVE_SIZE": value}) == int(value)
    else:
        with pytest.raises(SettingsError, match=r"SCORING_WAVE_SIZE"):
            SCORING_WAVE_SIZE.get({"SCORING_WAVE_SIZE": value})
