"""The error document's newest-version-wins rules against real blob storage (Azurite), and the header hints.

The devhost tests (tests/integration/test_scoring_errors.py) show the document as a user meets it; these pin the
orderings a devhost run cannot force: a write racing a newer upload, a removal by an older version's run.
"""

from __future__ import annotations

import json
import uuid

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import ScoringError
from shared.scoring.chunk_scoring import plan_scoring
from shared.scoring.error_document import header_hint, remove_error_document, write_error_document
from shared.scoring.payloads import ScoringRequest

INPUT, ERRORS = "incoming", "scoring-errors"


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string}


def _upload(env: dict[str, str], name: str, data: bytes) -> ScoringRequest:
    blobs.ensure_container(INPUT, env)
    blobs.upload(INPUT, name, data, env=env)
    info = blobs.blob_info(INPUT, name, env)
    return ScoringRequest("acct", INPUT, name, info.etag, info.size, run_id=f"score-{uuid.uuid4().hex[:6]}")


def _document(env: dict[str, str], name: str) -> dict[str, str] | None:
    info = blobs.find_blob(ERRORS, f"{name}.error.json", env)
    return None if info is None else json.loads(blobs.read_blob(ERRORS, f"{name}.error.json", env))


@pytest.mark.parametrize(
    ("columns", "hint"),
    [
        (("Height;Weight",), "the header looks ';'-separated ('Height;Weight')"),
        (("id\theight",), "the header looks tab-separated"),
        (("Height", "Weight"), "it has 'Height', not 'height' (column names are case-sensitive)"),
        (("id", "weight"), ""),
        (("a;b", "c", "d"), ""),  # one ';' among commas is a value, not the delimiter
    ],
)
def test_header_hints_name_the_delimiter_and_the_case(columns: tuple[str, ...], hint: str) -> None:
    found = header_hint(columns, ["height"])
    assert hint in found if hint else found == ""
    if hint:
        assert found.endswith("expected a comma-separated header with a 'height' column")


def test_the_document_says_what_was_seen_and_what_was_expected(env: dict[str, str]) -> None:
    name = f"{uuid.uuid4().hex[:8]}.csv"
    request = _upload(env, name, b"\xef\xbb\xbfHeight;Weight\r\n170;70\r\n")
    assert write_error_document(request, "boom", container=ERRORS, expected="commas", env=env) == (
        f"{ERRORS}/{name}.error.json"
    )
    document = _document(env, name)
    assert document is not None
    assert document["header"] == "Height;Weight"  # without BOM and line ending
    assert (document["blob"], document["etag"], document["run_id"]) == (
        f"{INPUT}/{name}",
        request.etag.strip('"'),
        request.run_id,
    )
    assert (document["error"], document["expected"]) == ("boom", "commas")


def test_an_older_versions_failure_never_overwrites_and_its_success_never_removes(env: dict[str, str]) -> None:
    name = f"{uuid.uuid4().hex[:8]}.csv"
    old = _upload(env, name, b"x\n1\n")
    new = _upload(env, name, b"y\n2\n")
    write_error_document(new, "new version failed", container=ERRORS, expected="", env=env)
    assert write_error_document(old, "old version failed", container=ERRORS, expected="", env=env) == ""
    remove_error_document(old, container=ERRORS, env=env)  # an old version's late success
    document = _document(env, name)
    assert document is not None and document["error"] == "new version failed"

    remove_error_document(new, container=ERRORS, env=env)
    assert _document(env, name) is None


def test_a_newer_versions_success_removes_an_older_versions_document(env: dict[str, str]) -> None:
    name = f"{uuid.uuid4().hex[:8]}.csv"
    old = _upload(env, name, b"x\n1\n")
    write_error_document(old, "old version failed", container=ERRORS, expected="", env=env)
    new = _upload(env, name, b"height\n2\n")
    remove_error_document(new, container=ERRORS, env=env)
    assert _document(env, name) is None


def test_a_deleted_input_gets_no_document(env: dict[str, str]) -> None:
    name = f"{uuid.uuid4().hex[:8]}.csv"
    request = _upload(env, name, b"x\n1\n")
    blobs.delete_blob(INPUT, name, env)
    assert write_error_document(request, "gone", container=ERRORS, expected="", env=env) == ""
    assert _document(env, name) is None


def test_a_file_named_with_a_line_break_is_refused_and_its_document_can_be_found(env: dict[str, str]) -> None:
    """Issue 19: Azurite stores such a name, Azure Storage refuses it. The planner refuses it by name, and the
    document goes to the name with the control characters percent-encoded (writable and findable anywhere)."""
    stem = uuid.uuid4().hex[:8]
    name = f"{stem}/cr\r\nlf.csv"
    request = _upload(env, name, b"height\n170\n")
    with pytest.raises(ScoringError, match=r"contains the control character U\+000D \(carriage return\)"):
        plan_scoring(request, chunk_bytes=1024, output_container="predictions", errors_container=ERRORS, env=env)
    written = write_error_document(request, "refused", container=ERRORS, expected="a name", env=env)
    assert written == f"{ERRORS}/{stem}/cr%0D%0Alf.csv.error.json"
    document = json.loads(blobs.read_blob(ERRORS, f"{stem}/cr%0D%0Alf.csv.error.json", env))
    assert document["blob"] == f"{INPUT}/{name}" and document["header"] == "height"
    remove_error_document(request, container=ERRORS, env=env)  # a later success finds it by the same name
    assert blobs.find_blob(ERRORS, f"{stem}/cr%0D%0Alf.csv.error.json", env) is None
