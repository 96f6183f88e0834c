"""Chunk scoring: byte-identical input columns plus predictions, bad rows listed, chunks concatenate exactly."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import ScoringError
from shared.scoring.chunk_bytes import score_chunk_bytes
from shared.scoring.chunk_scoring import plan_scoring, realign_plan, score_chunk
from shared.scoring.commit import commit_predictions
from shared.scoring.csv_chunks import plan_chunks
from shared.scoring.payloads import ChunkPlan, ChunkResult, CommitResult, ScoringRequest
from tests.helpers.chunks import (
    FEATURES,
    error_rows,
    expected_prediction,
    per_line,
    predict,
    score_in_memory,
    score_whole,
)


def changed_chunks(old: ChunkPlan, new: ChunkPlan) -> list[int]:
    """Indexes whose byte range differs between two plans: the only chunks to score again (as the orchestrator)."""
    return [n.index for o, n in zip(old.chunks, new.chunks, strict=True) if (o.start, o.end) != (n.start, n.end)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"id,height\n1,170\n2,180.5\n", b"id,height,predicted_weight\n1,170,88.0\n2,180.5,93.25\n"),
        (b"id,height\r\n1,170\r\n", b"id,height,predicted_weight\r\n1,170,88.0\r\n"),
        (b"\xef\xbb\xbfheight\n170", b"\xef\xbb\xbfheight,predicted_weight\n170,88.0"),
        (b'height,note\n170,"a, b"\n', b'height,note,predicted_weight\n170,"a, b",88.0\n'),
        (b'height,note\n170,"two\nlines"\n', b'height,note,predicted_weight\n170,"two\nlines",88.0\n'),
        (b"height,weight\n", b"height,weight,predicted_weight\n"),
        (b"height", b"height,predicted_weight"),
        (b'"height"\n" 170 "\n', b'"height",predicted_weight\n" 170 ",88.0\n'),
        (b"height\n170\n\n180\n", b"height,predicted_weight\n170,88.0\n\n180,93.0\n"),
        (b"height\r\n170\n180\r\n", b"height,predicted_weight\r\n170,88.0\n180,93.0\r\n"),
        (b"height\n-0.000002\n", b"height,predicted_weight\n-0.000002,2.999999\n"),
        (b"height\n-6.000002\n", b"height,predicted_weight\n-6.000002," + repr(0.5 * -6.000002 + 3.0).encode() + b"\n"),
    ],
)
def test_output_keeps_input_bytes_and_appends_the_prediction(data: bytes, expected: bytes) -> None:
    output, errors, _ = score_whole(data)
    assert output == expected
    assert errors == []


def test_bad_rows_keep_their_place_and_are_listed_with_input_line_numbers() -> None:
    data = b'id,height,note\n1,170,ok\n2,abc,x\n3,,x\n4,170\n5,170,"multi\nline"\n6,1e400,x\n7,180,x,extra\n8,nan,x\n'
    output, errors, rows = score_whole(data)
    assert output == (
        b'id,height,note,predicted_weight\n1,170,ok,88.0\n2,abc,x,\n3,,x,\n4,170,\n5,170,"multi\nline",88.0\n'
        b"6,1e400,x,\n7,180,x,extra,\n8,nan,x,\n"
    )
    assert rows == 8
    assert errors == [
        (3, 3, "height", "not_a_number", "abc"),
        (4, 4, "height", "missing", ""),
        (5, 5, "", "field_count", "found 2, expected 3"),
        (8, 8, "height", "out_of_range", "1e400"),
        (9, 9, "", "field_count", "found 4, expected 3"),
        (10, 10, "height", "not_a_number", "nan"),
    ]
    for chunk_bytes in (1, 9, 30):
        chunked = score_in_memory(data, chunk_bytes)
        assert chunked[0] == output
        assert per_line(chunked[1]) == per_line(errors)


def test_predictions_print_like_python_repr() -> None:
    heights = [0.1, 1e-9, -6.0, 2e16, 1 / 3, 123456.789, -7.99999]
    data = b"height\n" + b"".join(f"{h!r}\n".encode() for h in heights)
    output, _, _ = score_whole(data)
    got = [line.rsplit(b",", 1)[1].decode() for line in output.splitlines()[1:]]
    assert got == [expected_prediction(h) for h in heights]


def test_missing_feature_column_names_model_and_columns() -> None:
    data = b"a,b\n1,2\n"
    with pytest.raises(ScoringError) as err:
        score_chunk_bytes(
            data,
            header=plan_chunks(lambda s, e: data[s:e], len(data), 100, "incoming/x.csv")[0],
            first=True,
            features=FEATURES,
            prediction_column="predicted_weight",
            predict=predict,
            source="incoming/x.csv",
            model_label="height-weight v1",
        )
    assert str(err.value) == "incoming/x.csv lacks column 'height' required by model height-weight v1 (columns: a, b)"


def test_not_utf8_names_the_blob_and_byte_offset() -> None:
    data = b"height,name\n170,Jos\xe9\n"
    with pytest.raises(ScoringError, match=r"incoming/x.csv is not UTF-8 text: byte 0xe9 at offset 19"):
        score_in_memory(data, 4)


# --- random CSVs: many chunks == one chunk == an independent reference --------------------------------

_texts = st.text(alphabet=st.sampled_from('ab ,"\n\r\xe9€'), max_size=6)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, bytes]:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    rows = draw(
        st.lists(st.tuples(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just("x")), _texts), max_size=25)
    )
    last_eol = draw(st.booleans())
    lines_in, lines_out = [f"height,note{eol}"], [f"height,note,predicted_weight{eol}"]
    for i, (height, note) in enumerate(rows):
        quoted = '"' + note.replace('"', '""') + '"' if any(c in note for c in ',"\r\n') else note
        text = f"{height!r},{quoted}" if isinstance(height, float) else f"{height},{quoted}"
        pred = expected_prediction(height) if isinstance(height, float) else ""
        ending = eol if (i < len(rows) - 1 or last_eol) else ""
        lines_in.append(text + ending)
        lines_out.append(f"{text},{pred}{ending}")
    return (bom + "".join(lines_in)).encode(), (bom + "".join(lines_out)).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.integers(1, 60))
@example(  # a chunk cut inside quotes whose rows all have whole-row problems (once crashed the errors CSV)
    (b'height,note\nx,"\na\n,\xc3\xa9"\n0.0,"\n"', b'height,note,predicted_weight\nx,"\na\n,\xc3\xa9",\n0.0,"\n",3.0'),
    13,
)
def test_random_csv_chunks_concatenate_to_the_reference(case: tuple[bytes, bytes], chunk_bytes: int) -> None:
    data, expected = case
    whole, whole_errors, _ = score_whole(data)
    assert whole == expected
    chunked, chunked_errors, _ = score_in_memory(data, chunk_bytes)
    assert chunked == whole
    assert per_line(chunked_errors) == per_line(whole_errors)


def test_large_chunk_fast_path_matches_row_by_row() -> None:
    rng = np.random.default_rng(7)
    heights = rng.normal(170, 10, 20_000).tolist()
    body = "".join(f"{i},{h!r},name{i}\n" for i, h in enumerate(heights))
    data = ("id,height,name\n" + body).encode()
    expected = (
        "id,height,name,predicted_weight\n"
        + "".join(f"{i},{h!r},name{i},{expected_prediction(h)}\n" for i, h in enumerate(heights))
    ).encode()
    assert score_whole(data)[0] == expected
    assert score_in_memory(data, 50_000)[0] == expected


# --- the blob-level steps against Azurite -------------------------------------------------------------


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string}


def run_scoring(
    env: dict[str, str], data: bytes, chunk_bytes: int, threshold: int = -1, rerun: bool = False
) -> tuple[ChunkPlan, CommitResult]:
    suffix = uuid.uuid4().hex[:12]
    inp, out, err = f"in{suffix}", f"out{suffix}", f"err{suffix}"
    blobs.ensure_container(inp, env)
    blobs.upload(inp, "dir/x.csv", data, env=env)
    request = ScoringRequest(
        account="devstoreaccount1", container=inp, name="dir/x.csv", etag="", size=0, run_id="run-1"
    )
    plan = plan_scoring(
        request,
        chunk_bytes=chunk_bytes,
        output_container=out,
        errors_container=err,
        features=FEATURES,
        model_label="height-weight v1",
        env=env,
    )
    plan = ChunkPlan.from_dict(plan.to_dict())  # what crosses the orchestration boundary

    def score(p: ChunkPlan, indexes: list[int]) -> list[ChunkResult]:
        return [
            ChunkResult.from_dict(
                score_chunk(
                    p, i, features=FEATURES, prediction_column="predicted_weight", predict=predict, env=env
                ).to_dict()
            )
            for i in indexes
        ]

    results = score(plan, [c.index for c in plan.chunks])
    if any(r.misaligned for r in results):
        new_plan = realign_plan(plan, results, env)
        redo = {r.index: r for r in score(new_plan, changed_chunks(plan, new_plan))}
        plan, results = new_plan, [redo.get(r.index, r) for r in results]
    if rerun:
        results = [*score(plan, [0]), *results[1:]]  # chunk 0 executed twice
    commit = commit_predictions(
        plan, results, model_name="height-weight", model_version="1", error_threshold=threshold, env=env
    )
    if rerun:
        assert (
            commit_predictions(
                plan, results, model_name="height-weight", model_version="1", error_threshold=threshold, env=env
            )
            == commit
        )
    return plan, commit


def read_blob(env: dict[str, str], container: str, name: str) -> bytes:
    return blobs.read_range(container, name, 0, blobs.blob_info(container, name, env).size, env=env)


def test_blob_run_commits_exact_predictions_and_errors(env: dict[str, str]) -> None:
    data = b"id,height,note\r\n" + b"".join(
        f'{i},{"bad" if i % 97 == 5 else 150 + i % 40},"n\r\n{i}"\r\n'.encode() for i in range(3000)
    )
    expected, expected_errors, _ = score_whole(data)
    plan, commit = run_scoring(env, data, chunk_bytes=4096, rerun=True)
    assert len(plan.chunks) > 10
    assert read_blob(env, commit.output_container, "dir/x.csv") == expected
    info = blobs.blob_info(commit.output_container, "dir/x.csv", env)
    assert info.metadata["rows"] == "3000" and info.metadata["model_name"] == "height-weight"
    assert info.metadata["source_etag"] == plan.request.etag.strip('"') and info.metadata["run_id"] == "run-1"
    errors_csv = read_blob(env, commit.errors_container, "dir/x.csv")
    assert errors_csv.startswith(b"line,last_line,column,problem,value\n")
    assert error_rows(errors_csv) == expected_errors
    assert all(row[2:] == ("height", "not_a_number", "bad") for row in expected_errors)
    assert expected_errors[0][:2] == (12, 12)  # row 5 starts on input line 2 + 5 * 2 (each row spans two lines)
    assert commit.bad_rows == len(expected_errors) and commit.rows == 3000
    assert blobs.list_names(commit.errors_container, "dir/x.csv.parts/", env) == []


def test_over_the_error_threshold_only_errors_are_committed(env: dict[str, str]) -> None:
    with pytest.raises(ScoringError, match=r"2 bad rows, more than SCORING_ERROR_THRESHOLD=1"):
        run_scoring(env, b"height\nx\n170\ny\n", chunk_bytes=4, threshold=1)


def test_missing_column_fails_at_planning(env: dict[str, str]) -> None:
    with pytest.raises(ScoringError, match=r"dir/x.csv lacks column 'height' required by model height-weight v1"):
        run_scoring(env, b"a,b\n1,2\n", chunk_bytes=1024)


def test_header_only_blob_gives_header_and_zero_rows(env: dict[str, str]) -> None:
    _, commit = run_scoring(env, b"id,height\r\n", chunk_bytes=1024)
    assert read_blob(env, commit.output_container, "dir/x.csv") == b"id,height,predicted_weight\r\n"
    assert commit.rows == 0 and commit.bad_rows == 0
