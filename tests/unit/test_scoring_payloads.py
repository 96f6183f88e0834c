"""Scoring payloads are `shared.payloads.Payload` dataclasses whose JSON is, byte for byte, what the hand-written
payloads produced before (the texts below were printed by that code), so runs in flight during a deployment and
anything reading the status output see no change."""

from __future__ import annotations

import json

import pytest

from shared.payloads import Payload, PayloadError
from shared.scoring.csv_chunks import ChunkRange, CsvHeader
from shared.scoring.payloads import ChunkPlan, ChunkResult, CommitResult, ScoringOutcome, ScoringRequest, ScoringRun

REQUEST = ScoringRequest(
    account="devstoreaccount1",
    container="incoming",
    name="dir/ä x.csv",
    etag='"0x8DC"',
    size=123456,
    force=True,
    run_id="score-abc",
    requested="2026-01-02T03:04:05.000006Z",
)
PLAN = ChunkPlan(
    request=REQUEST,
    header=CsvHeader(columns=("id", "height", "na,me"), line_ending="\r\n", bom_length=3, header_length=24),
    chunks=(ChunkRange(0, 0, 100), ChunkRange(1, 100, 250)),
    output_container="predictions",
    output_name="dir/ä x.csv",
    errors_container="scoring-errors",
    errors_name="dir/ä x.csv",
    model_name="height-weight",
    model_version="3",
)
RESULT = ChunkResult(
    index=1,
    start=100,
    end=250,
    rows=5,
    bad_rows=1,
    lines=6,
    quote_parity=0,
    output_block="YmxvY2s=",
    output_bytes=300,
    errors_part="p/000001.csv",
    misaligned=False,
)
COMMIT = CommitResult(
    output_container="predictions",
    output_name="x.csv",
    rows=10,
    bad_rows=1,
    committed=False,
    errors_container="scoring-errors",
    errors_name="x.csv",
    etag='"0x1"',
    model="m v1",
    reason="superseded",
    chunks=2,
    restage=(1, 5),
)

REQUEST_JSON = (
    '{"account": "devstoreaccount1", "container": "incoming", "name": "dir/\\u00e4 x.csv", "etag": "\\"0x8DC\\"", '
    '"size": 123456, "force": true, "run_id": "score-abc", "requested": "2026-01-02T03:04:05.000006Z"}'
)
BEFORE = {
    "ScoringRequest": (REQUEST, REQUEST_JSON),
    "ChunkPlan": (
        PLAN,
        '{"request": ' + REQUEST_JSON + ', "header": {"columns": ["id", "height", "na,me"], "line_ending": "\\r\\n", '
        '"bom_length": 3, "header_length": 24}, "chunks": [[0, 0, 100], [1, 100, 250]], "output_container": '
        '"predictions", "output_name": "dir/\\u00e4 x.csv", "errors_container": "scoring-errors", "errors_name": '
        '"dir/\\u00e4 x.csv", "content_type": "text/csv", "model_name": "height-weight", "model_version": "3"}',
    ),
    "ChunkResult": (
        RESULT,
        '{"index": 1, "start": 100, "end": 250, "rows": 5, "bad_rows": 1, "lines": 6, "quote_parity": 0, '
        '"output_block": "YmxvY2s=", "output_bytes": 300, "errors_part": "p/000001.csv", "misaligned": false}',
    ),
    "CommitResult": (
        COMMIT,
        '{"output_container": "predictions", "output_name": "x.csv", "rows": 10, "bad_rows": 1, "committed": false, '
        '"errors_container": "scoring-errors", "errors_name": "x.csv", "etag": "\\"0x1\\"", "model": "m v1", '
        '"reason": "superseded", "chunks": 2, "restage": [1, 5]}',
    ),
}


@pytest.mark.parametrize("name", list(BEFORE))
def test_payload_json_is_unchanged_byte_for_byte(name: str) -> None:
    payload, before = BEFORE[name]
    assert isinstance(payload, Payload)
    assert json.dumps(payload.to_dict()) == before
    assert type(payload).from_dict(json.loads(before)) == payload


def test_the_run_input_and_output_keep_their_shape() -> None:
    """The orchestration's input as the trigger built it, and its status output, as before."""
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    run = ScoringRun(request=REQUEST, parallel=4, wave_size=64, trace=trace)
    assert json.dumps(run.to_dict()) == (
        '{"request": ' + REQUEST_JSON + ', "parallel": 4, "wave_size": 64, "trace": {"traceparent": '
        '"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}'
    )
    started, finished = "2026-01-02T03:04:05+00:00", "2026-01-02T03:05:00+00:00"
    outcome = ScoringOutcome("incoming/x.csv", "0x8DC", 2, started, finished, COMMIT)
    before = {
        "source": "incoming/x.csv",
        "source_etag": "0x8DC",
        "chunks": 2,
        "started": started,
        "finished": finished,
        **json.loads(BEFORE["CommitResult"][1]),
    }
    assert json.dumps(outcome.to_dict()) == json.dumps(before)
    assert ScoringOutcome.from_dict(before) == outcome


def test_a_payload_missing_a_required_field_names_it() -> None:
    with pytest.raises(PayloadError, match=r"ScoringRequest: field 'account' is missing"):
        ScoringRequest.from_dict({"container": "incoming", "name": "x.csv"})
