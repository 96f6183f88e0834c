"""Failures visible where files land: a file that cannot be scored leaves `scoring-errors/<name>.error.json` saying
why, next to where its predictions would be; a later good version removes it; an older run never overwrites it.

Through devhost with the relay off, so each run starts exactly when the test delivers its event.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.events import blob_event, deliver
from tests.helpers.scoring import APP_SETTINGS, CARD, ERRORS, OUTPUT, people, runs, unique, wait_for_runs
from tests.helpers.storage import INPUT, download, upload

pytestmark = pytest.mark.integration

THRESHOLD = 2


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    settings = {**APP_SETTINGS, "SCORING_ERROR_THRESHOLD": str(THRESHOLD)}
    running = start_devhost(tmp_path_factory.mktemp("scoring-errors"), settings, workers=1)
    yield running
    running.stop()


def _score(host: RunningHost, name: str, data: bytes) -> tuple[str, dict[str, Any]]:
    """Upload a version of `name`, deliver its event, wait for its run; (eTag, run)."""
    etag = upload(host, name, data)
    count = len(runs(host, name)) + 1
    assert deliver(host, [blob_event(host, name, etag, len(data))]).status_code == 202
    run = next(r for r in wait_for_runs(host, name, count) if r["input"]["request"]["etag"] == etag)
    return etag, run


def _document(host: RunningHost, name: str) -> dict[str, Any] | None:
    raw = download(host, ERRORS, f"{name}.error.json")
    return None if raw is None else dict(json.loads(raw))


def test_a_semicolon_separated_upload_leaves_an_error_document_that_a_good_upload_removes(host: RunningHost) -> None:
    name = unique("excel-export")
    etag, run = _score(host, name, b"Height;Weight\n170;70\n")
    assert run["runtimeStatus"] == "Failed"
    document = _document(host, name)
    assert document is not None, host.log_text()[-3000:]
    assert document["blob"] == f"{INPUT}/{name}"
    assert document["etag"] == etag
    assert document["run_id"] == run["instanceId"]
    assert document["at"].startswith("20")
    assert document["header"] == "Height;Weight"
    assert "'height'" in document["expected"] and "comma-separated" in document["expected"]
    error = document["error"]
    assert "lacks column 'height'" in error
    assert "the header looks ';'-separated" in error
    assert "it has 'Height', not 'height'" in error
    assert error in run["output"]  # the same words as the run's own failure

    # The dashboard's scoring runs table links the document, and the link serves it.
    page = host.request("GET", "/api/dashboard").text
    links = [link for link in re.findall(r"<a href='([^']*)'>error</a>", page) if name in link]
    assert links, page[-2000:]
    served = host.request("GET", "/api/dashboard" + html.unescape(links[0]))
    assert served.status_code == 200 and json.loads(served.content)["etag"] == etag

    good = people(20)
    _, fixed = _score(host, name, good.data())
    assert fixed["runtimeStatus"] == "Completed", fixed
    assert download(host, OUTPUT, name) is not None
    assert _document(host, name) is None


def test_a_file_that_is_not_utf8_says_so_and_shows_the_header_seen(host: RunningHost) -> None:
    name = unique("latin1")
    _, run = _score(host, name, "id,höhe,height\n1,2,170\n".encode("latin-1"))
    assert run["runtimeStatus"] == "Failed"
    document = _document(host, name)
    assert document is not None
    assert f"{INPUT}/{name} is not UTF-8" in document["error"] and "0xf6" in document["error"]
    assert document["header"] == "id,h\ufffdhe,height"


def test_a_tab_separated_header_is_named(host: RunningHost) -> None:
    name = unique("tabs")
    _score(host, name, b"id\theight\n1\t170\n")
    document = _document(host, name)
    assert document is not None
    assert "lacks column 'height'" in document["error"] and "looks tab-separated" in document["error"]


@pytest.mark.parametrize(
    ("case", "data", "words"),
    [
        ("unterminated-quote", b'id,height,note\n1,170,"open\n2,180,x\n', "a quoted field is not closed"),
        ("over-threshold", b"id,height\n1,a\n2,b\n3,c\n4,170\n", f"SCORING_ERROR_THRESHOLD={THRESHOLD}"),
        ("empty", b"", "is empty"),
    ],
)
def test_other_files_that_cannot_be_scored_leave_a_document(
    host: RunningHost, case: str, data: bytes, words: str
) -> None:
    name = unique(case)
    _, run = _score(host, name, data)
    assert run["runtimeStatus"] == "Failed"
    document = _document(host, name)
    assert document is not None
    assert words in document["error"]
    assert f"model height-weight v{CARD['version']}" in document["expected"]


def test_an_older_versions_run_does_not_overwrite_the_newer_versions_document(host: RunningHost) -> None:
    name = unique("versions")
    old = b"id,weight\n1,70\n"
    etag_old = upload(host, name, old)  # no event yet: its run comes late, after the newer version's
    etag_new, new_run = _score(host, name, b"Height;Weight\n170;70\n")
    assert new_run["runtimeStatus"] == "Failed"
    before = _document(host, name)
    assert before is not None and before["etag"] == etag_new

    assert deliver(host, [blob_event(host, name, etag_old, len(old))]).status_code == 202
    late = next(r for r in wait_for_runs(host, name, 2) if r["input"]["request"]["etag"] == etag_old)
    assert late["runtimeStatus"] == "Failed"
    assert f"replaced by eTag {etag_new}" in late["output"]
    assert _document(host, name) == before
