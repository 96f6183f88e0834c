"""Concurrent scoring runs of one output, and what a run says when its input goes away, through devhost.

Runs are started as a user starts them (`POST /api/scoring`, Event Grid deliveries) while another run of the same
output is still scoring; the predictions CSV left behind must be whole, from one run, and of the newest version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.events import blob_event, deliver
from tests.helpers.scoring import APP_SETTINGS, OUTPUT, Csv, assert_scored, people, runs, start, unique, wait_for_runs
from tests.helpers.storage import INPUT, blob_service, download, upload

pytestmark = pytest.mark.integration

# Many small chunks scored one at a time: a run of a few hundred KB lasts long enough to start another beside it.
CHUNK = 16 * 1024
ROWS = 60_000


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    settings = {**APP_SETTINGS, "SCORING_CHUNK_BYTES": str(CHUNK), "SCORING_PARALLEL_CHUNKS": "1"}
    running = start_devhost(tmp_path_factory.mktemp("scoring-runs"), settings, workers=2)
    yield running
    running.stop()


def _scoring(host: RunningHost, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Waits until a run of `name` has scored some chunks (and has chunks left): the middle of a run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs(host, name):
            status = run.get("customStatus") or {}
            if run["runtimeStatus"] == "Running" and status.get("chunks_done", 0) >= 1:
                assert status["chunks_done"] < status["chunks_total"] - 2, status
                return run
        time.sleep(0.02)
    raise AssertionError(f"{name}: no run reached the scoring stage\n{host.log_text()[-3000:]}")


def _no_service_xml(text: str) -> None:
    assert "<?xml" not in text and "RequestId" not in text and "InvalidBlockList" not in text, text


def _output_message(run: dict[str, Any]) -> str:
    return run["output"] if isinstance(run["output"], str) else json.dumps(run["output"])


def test_force_while_the_first_run_is_scoring_leaves_one_complete_output(host: RunningHost) -> None:
    source = people(ROWS, seed=31)
    name = unique("force-during-run")
    etag = upload(host, name, source.data())
    first = start(host, {"container": INPUT, "name": name})
    assert first.status_code == 202, first.text
    _scoring(host, name)
    forced = start(host, {"container": INPUT, "name": name, "force": True})
    assert forced.status_code == 202, forced.text
    assert forced.json()["id"] != first.json()["id"]

    ended = {r["instanceId"]: r for r in wait_for_runs(host, name, 2, timeout=120)}
    for run in ended.values():
        _no_service_xml(_output_message(run))
    # Neither run fails the other; the forced run's predictions are the ones left (force supersedes).
    assert [r["runtimeStatus"] for r in ended.values()] == ["Completed", "Completed"], ended
    assert_scored(host, name, source, ended[forced.json()["id"]], etag)
    superseded = ended[first.json()["id"]]["output"]
    if not superseded["committed"]:
        assert forced.json()["id"] in superseded["reason"], superseded


def test_forced_runs_started_together_leave_one_complete_output(host: RunningHost) -> None:
    source = people(ROWS // 2, seed=32)
    name = unique("force-twice")
    etag = upload(host, name, source.data())
    ids = [start(host, {"container": INPUT, "name": name, "force": True}).json()["id"] for _ in range(3)]
    ended = {r["instanceId"]: r for r in wait_for_runs(host, name, 3, timeout=180)}
    assert [r["runtimeStatus"] for r in ended.values()] == ["Completed"] * 3, [
        _output_message(r) for r in ended.values()
    ]
    # The latest request's predictions stay, whichever run ended first.
    assert_scored(host, name, source, ended[ids[-1]], etag)
    for earlier in ids[:-1]:
        output = ended[earlier]["output"]
        assert output["committed"] is False or output["etag"] != ended[ids[-1]]["output"]["etag"], output


def test_events_of_two_versions_close_together_leave_the_newer_output(host: RunningHost) -> None:
    older, newer = people(ROWS, seed=33), people(ROWS + 500, seed=34)
    name = unique("two-versions")
    etag1 = upload(host, name, older.data())
    assert deliver(host, [blob_event(host, name, etag1, len(older.data()))]).status_code == 202
    _scoring(host, name)
    etag2 = upload(host, name, newer.data())
    assert deliver(host, [blob_event(host, name, etag2, len(newer.data()))]).status_code == 202
    ended = {r["input"]["request"]["etag"]: r for r in wait_for_runs(host, name, 2, timeout=120)}
    old_run, new_run = ended[etag1], ended[etag2]
    _no_service_xml(_output_message(old_run))
    assert_scored(host, name, newer, new_run, etag2)
    # The older run ends saying what happened to its input, and never wrote over the newer predictions.
    assert old_run["runtimeStatus"] == "Failed", old_run
    assert f"replaced by eTag {etag2}" in old_run["output"], old_run["output"]


def test_an_older_run_never_overwrites_newer_predictions(host: RunningHost) -> None:
    # The newer version is scored first (its event came first); the older version's run starts afterwards.
    older, newer = people(300, seed=35), people(400, seed=36)
    name = unique("late-old-run")
    etag1 = upload(host, name, older.data())
    etag2 = upload(host, name, newer.data())
    assert deliver(host, [blob_event(host, name, etag2, len(newer.data()))]).status_code == 202
    wait_for_runs(host, name, 1)
    assert deliver(host, [blob_event(host, name, etag1, len(older.data()))]).status_code == 202
    ended = {r["input"]["request"]["etag"]: r for r in wait_for_runs(host, name, 2)}
    assert_scored(host, name, newer, ended[etag2], etag2)
    assert ended[etag1]["runtimeStatus"] == "Failed"
    assert f"replaced by eTag {etag2}" in ended[etag1]["output"]


def test_input_deleted_while_scoring_says_deleted(host: RunningHost) -> None:
    source = people(ROWS, seed=37)
    name = unique("deleted-mid-run")
    upload(host, name, source.data())
    response = start(host, {"container": INPUT, "name": name})
    assert response.status_code == 202, response.text
    _scoring(host, name)
    blob_service(host).get_blob_client(INPUT, name).delete_blob()
    run = host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=120)
    assert run["runtimeStatus"] == "Failed"
    message = run["output"]
    _no_service_xml(message)
    assert f"{INPUT}/{name} was deleted while it was being scored" in message, message
    assert "new version" not in message and "changed" not in message
    assert download(host, OUTPUT, name) is None


def test_input_replaced_while_scoring_names_the_new_etag(host: RunningHost) -> None:
    source = people(ROWS, seed=38)
    name = unique("replaced-mid-run")
    upload(host, name, source.data())
    response = start(host, {"container": INPUT, "name": name})
    assert response.status_code == 202, response.text
    _scoring(host, name)
    etag2 = upload(host, name, people(100, seed=39).data())
    run = host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=120)
    assert run["runtimeStatus"] == "Failed"
    _no_service_xml(run["output"])
    assert f"{INPUT}/{name} was replaced by eTag {etag2} while it was being scored" in run["output"], run["output"]
    assert download(host, OUTPUT, name) is None


def test_a_file_that_is_not_utf8_says_so(host: RunningHost) -> None:
    source = Csv(b"id,height,name", [b"1,170.5,Ren\xe9e", b"2,180.0,Bob"])
    name = unique("latin1")
    upload(host, name, source.data())
    response = start(host, {"container": INPUT, "name": name})
    run = host.wait_for_completion(response.json()["statusQueryGetUri"])
    assert run["runtimeStatus"] == "Failed"
    _no_service_xml(run["output"])
    assert f"{INPUT}/{name} is not UTF-8 text: byte 0xe9" in run["output"], run["output"]


# Guards (these messages were already plain): what a user reads when a whole file cannot be scored.
WHOLE_FILE = {
    "utf-16": ("id,height\n1,170\n".encode("utf-16"), "is not UTF-8 text: byte 0xff at offset 0"),
    "gzip": (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)) * 4, "is not UTF-8 text: byte 0x8b"),
    "empty": (b"", "is empty: a header line naming the columns is required"),
    "no-height": (b"id,weight\n1,70\n", "lacks column 'height' required by model"),
    "unclosed-quote": (b'id,height,note\n1,170,"open\n2,180,x\n', "a quoted field is not closed"),
}


@pytest.mark.parametrize("case", WHOLE_FILE, ids=list(WHOLE_FILE))
def test_whole_file_failures_say_what_is_wrong(host: RunningHost, case: str) -> None:
    data, expected = WHOLE_FILE[case]
    name = unique(f"whole-{case}")
    upload(host, name, data)
    response = start(host, {"container": INPUT, "name": name})
    run = host.wait_for_completion(response.json()["statusQueryGetUri"])
    assert run["runtimeStatus"] == "Failed"
    _no_service_xml(run["output"])
    assert f"{INPUT}/{name}" in run["output"] and expected in run["output"], run["output"]
    assert download(host, OUTPUT, name) is None
