"""Batch scoring end to end: CSVs put into Azurite become predictions CSVs through the real app on devhost.

Every expected predictions CSV is built here from the input records and the shipped model's own predictions,
never by the app's scoring code; runs are found through the Durable HTTP API as an operator would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.events import blob_event, deliver
from tests.helpers.processes import worker_pids
from tests.helpers.scoring import (
    APP_SETTINGS,
    CARD,
    ERRORS,
    OUTPUT,
    PREDICTION,
    SUBSCRIPTIONS,
    Csv,
    assert_scored,
    people,
    predict,
    runs,
    start,
    unique,
    wait_for_run,
    wait_for_runs,
)
from tests.helpers.storage import INPUT, blob_service, download, metadata, upload

pytestmark = pytest.mark.integration

# Small chunks, so files of a few hundred KB already have many chunks and chunk boundaries inside quoted fields.
CHUNK = 64 * 1024
# Files of more than WAVE chunks are scored in waves of sub-orchestrations.
WAVE = 16
# The second host scores any test file as one chunk and tolerates 2 bad rows.
ONE_CHUNK = 1024 * 1024 * 1024
THRESHOLD = 2


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """The app with the blob relay on: an upload to `incoming` is all it takes to start a run."""
    settings = {
        **APP_SETTINGS,
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS),
        "SCORING_CHUNK_BYTES": str(CHUNK),
        "SCORING_WAVE_SIZE": str(WAVE),
    }
    running = start_devhost(tmp_path_factory.mktemp("scoring-devhost"), settings)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def one_chunk_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """One worker, one chunk per file, an error threshold, and no relay: runs start only as the test says."""
    settings = {
        **APP_SETTINGS,
        "SCORING_CHUNK_BYTES": str(ONE_CHUNK),
        "SCORING_ERROR_THRESHOLD": str(THRESHOLD),
    }
    running = start_devhost(tmp_path_factory.mktemp("scoring-one-chunk"), settings, workers=1)
    yield running
    running.stop()


# --- the happy path -------------------------------------------------------------------------------------------


def test_uploaded_csv_becomes_predictions_equal_to_the_reference(host: RunningHost) -> None:
    source = people(5000)
    golden = [(row["height"], row[PREDICTION]) for row in CARD["golden"]]
    source.records += [f"golden-{h},{h},card".encode() for h, _ in golden]
    data = source.data()
    assert len(data) > CHUNK  # more than one chunk
    name = unique("folder/people")
    etag = upload(host, name, data)

    run = wait_for_run(host, name)
    assert_scored(host, name, source, run, etag)
    lines = download(host, OUTPUT, name) or b""
    # The card's golden points come out as the card recorded them.
    for (height, weight), line in zip(golden, lines.splitlines()[-len(golden) :], strict=True):
        assert line.startswith(f"golden-{height},".encode())
        assert float(line.rsplit(b",", 1)[1]) == pytest.approx(weight, rel=1e-9)
    # What an operator sees of the run.
    rows = len(source.records)
    assert run["customStatus"]["stage"] == "done"
    assert run["customStatus"]["chunks_done"] == run["customStatus"]["chunks_total"] >= 2
    assert run["customStatus"]["rows"] == rows
    output = run["output"]
    assert output["source"] == f"{INPUT}/{name}"
    assert output["source_etag"] == etag
    assert (output["output_container"], output["output_name"]) == (OUTPUT, name)
    assert (output["rows"], output["bad_rows"], output["committed"]) == (rows, 0, True)
    assert output["model"] == f"{CARD['name']} v{CARD['version']}"
    assert output["chunks"] == run["customStatus"]["chunks_total"]
    # Nothing for the errors container when every row scored.
    assert download(host, ERRORS, name) is None


def test_predictions_are_never_visible_partially(host: RunningHost) -> None:
    source = people(40_000, seed=11)
    expected, _ = source.expected()
    name = unique("watched")
    upload(host, name, source.data())
    seen: list[bytes] = []
    progress: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress += [r["customStatus"] for r in runs(host, name) if r["runtimeStatus"] == "Running"]
        found = download(host, OUTPUT, name)
        if found is not None:
            seen.append(found)
            if len(seen) >= 3:
                break
        time.sleep(0.02)
    # Each look at the predictions container finds the whole file or nothing.
    assert seen and all(s == expected for s in seen)
    run = wait_for_run(host, name)
    assert run["output"]["chunks"] > 10
    # While it ran, the run said how far it was: chunks and rows only ever grow, up to the totals.
    counts = [(p["chunks_done"], p["rows"]) for p in progress if p and "chunks_done" in p]
    assert counts == sorted(counts)
    assert all(p["chunks_total"] == run["output"]["chunks"] for p in progress if p and "chunks_total" in p)
    assert all(rows <= len(source.records) for _, rows in counts)


def _quoted_notes(i: int) -> str:
    # Long quoted notes with line breaks, commas and doubled quotes: most bytes of the file lie inside quotes.
    lines = "\n".join(f'line {k} of note {i}, with ""quotes""' for k in range(i % 5 + 1))
    return '"' + lines + " " + "x" * (i % 700) + '"'


def _inside_quotes_at_boundaries(data: bytes) -> int:
    """How many planned chunk boundaries (every CHUNK bytes) fall inside a quoted field."""
    return sum(data[:offset].count(b'"') % 2 for offset in range(CHUNK, len(data), CHUNK))


INPUT_CASES: dict[str, Callable[[], Csv]] = {
    "utf8-bom": lambda: Csv(people(50).header, people(50).records, bom=True),
    "crlf": lambda: Csv(people(3000).header, people(3000).records, eol=b"\r\n"),
    "crlf-bom-no-final-line-break": lambda: Csv(
        people(20).header, people(20).records, eol=b"\r\n", bom=True, final_eol=False
    ),
    "quoted-commas-and-numbers": lambda: Csv(
        b'"id","name, full","height"',
        [f'{i},"Doe, Jane {i}",'.encode() + (b'"%d.5"' if i % 2 else b"%d.5") % (150 + i % 50) for i in range(4000)],
    ),
    "quoted-line-breaks-across-chunks": lambda: people(600, note=_quoted_notes),
    "non-ascii-text": lambda: Csv(
        b"id,height,nom", [f"{i},{160 + i},Zoë Ångström {i} 日本".encode() for i in range(30)]
    ),
    "header-only": lambda: Csv(b"id,height,name"),
    "header-only-without-line-break": lambda: Csv(b"id,height,name", final_eol=False),
}


@pytest.mark.parametrize("case", INPUT_CASES, ids=list(INPUT_CASES))
def test_input_layouts_come_out_exact(host: RunningHost, case: str) -> None:
    source = INPUT_CASES[case]()
    if case == "quoted-line-breaks-across-chunks":
        assert _inside_quotes_at_boundaries(source.data()) >= 2  # the case this input exists for
    name = unique(case, ".CSV" if case == "crlf" else ".csv")  # any case of the suffix
    etag = upload(host, name, source.data())
    run = wait_for_run(host, name)
    assert_scored(host, name, source, run, etag)


# --- inputs that cannot be scored -----------------------------------------------------------------------------


def _not_utf8_late() -> bytes:
    data = people(8000).data()
    assert len(data) > 2 * CHUNK
    return data + b"8000,170.5,Jos\xe9\n"


FAILING_CASES: dict[str, tuple[Callable[[], bytes], list[str]]] = {
    "missing-feature-column": (
        lambda: b"id,weight,name\n1,70,Ada\n",
        ["{blob} lacks column 'height' required by model height-weight v{version} (columns: id, weight, name)"],
    ),
    "no-header": (
        lambda: b"170.5\n180.0\n",
        ["{blob} lacks column 'height'", "(columns: 170.5)"],
    ),
    "empty-file": (lambda: b"", ["{blob} is empty", "header"]),
    "not-utf8-header": (lambda: b"id,h\xf6he,height\n1,2,170\n", ["{blob} is not UTF-8", "0xf6"]),
    "not-utf8-in-a-later-chunk": (_not_utf8_late, ["{blob} is not UTF-8", "0xe9"]),
    "utf16": (lambda: "id,height\n1,170\n".encode("utf-16"), ["{blob} is not UTF-8"]),
}


@pytest.mark.parametrize("case", FAILING_CASES, ids=list(FAILING_CASES))
def test_unscorable_input_fails_the_run_naming_the_problem_and_commits_nothing(host: RunningHost, case: str) -> None:
    make, expected_parts = FAILING_CASES[case]
    name = unique(case)
    upload(host, name, make())
    run = wait_for_run(host, name)
    assert run["runtimeStatus"] == "Failed"
    for part in expected_parts:
        assert part.format(blob=f"{INPUT}/{name}", version=CARD["version"]) in run["output"]
    assert "Traceback" not in run["output"]
    assert download(host, OUTPUT, name) is None
    assert download(host, ERRORS, name) is None


def _errors_csv(host: RunningHost, name: str) -> list[dict[str, str]]:
    """One dict per bad line (a row of the errors CSV covers lines `line`..`last_line`)."""
    data = download(host, ERRORS, name)
    assert data is not None, "no errors CSV"
    assert data.startswith(b"line,last_line,column,problem,value\n")
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    return [{**row, "line": str(n)} for row in rows for n in range(int(row["line"]), int(row["last_line"]) + 1)]


def _with_bad_rows(count: int) -> Csv:
    """Multi-chunk file with quoted line breaks before the bad rows, so line numbers differ from row numbers."""
    source = people(6000, seed=3, note=lambda i: '"two\nlines"' if i % 10 == 0 else "plain")
    bad = [
        (b"", "missing"),
        (b"tall", "'tall'"),
        (b"NaN", "'NaN'"),
        (b"1e400", "'1e400'"),
        (b" ", "missing"),
    ][:count]
    positions = [5, 1200, 1201, 4100, 5999][:count]
    for position, (value, _) in zip(positions, bad, strict=True):
        source.records[position] = b"%d,%s,someone,plain" % (position, value)
    return source


def test_bad_rows_keep_their_place_and_are_listed_with_input_line_numbers(host: RunningHost) -> None:
    source = _with_bad_rows(5)
    source.records.append(b"ragged,180.5")  # too few fields
    data = source.data()
    assert len(data) > 2 * CHUNK
    name = unique("bad-rows")
    etag = upload(host, name, data)
    run = wait_for_run(host, name)
    assert_scored(host, name, source, run, etag)
    _, bad_lines = source.expected()
    listed = _errors_csv(host, name)
    assert [int(row["line"]) for row in listed] == bad_lines
    assert [(row["column"], row["problem"]) for row in listed] == [
        ("height", "missing"),
        ("height", "not_a_number"),  # 'tall' and 'NaN' on consecutive lines: one row of the errors CSV
        ("height", "not_a_number"),
        ("height", "out_of_range"),
        ("height", "missing"),
        ("", "field_count"),
    ]
    assert [row["value"] for row in listed] == ["", "tall", "tall", "1e400", "", "found 2, expected 4"]
    # The line numbers point at the rows as a text editor shows the input.
    text_lines = data.decode().split("\n")
    assert text_lines[bad_lines[1] - 1].startswith("1200,tall,")
    assert run["output"]["bad_rows"] == 6
    assert (run["output"]["errors_container"], run["output"]["errors_name"]) == (ERRORS, name)


@pytest.mark.parametrize(("bad", "committed"), [(THRESHOLD, True), (THRESHOLD + 1, False)])
def test_error_threshold_decides_whether_predictions_are_committed(
    one_chunk_host: RunningHost, bad: int, committed: bool
) -> None:
    host = one_chunk_host
    source = _with_bad_rows(bad)
    name = unique(f"threshold-{bad}")
    etag = upload(host, name, source.data())
    response = start(host, {"container": INPUT, "name": name})
    assert response.status_code == 202, response.text
    run = host.wait_for_completion(response.json()["statusQueryGetUri"])
    _, bad_lines = source.expected()
    assert [int(row["line"]) for row in _errors_csv(host, name)] == bad_lines
    if committed:
        assert_scored(host, name, source, run, etag)
        return
    assert run["runtimeStatus"] == "Failed"
    assert f"{INPUT}/{name} has {bad} bad rows, more than SCORING_ERROR_THRESHOLD={THRESHOLD}" in run["output"]
    assert f"{ERRORS}/{name}" in run["output"]
    assert download(host, OUTPUT, name) is None


# --- events: at least once, out of order, and not ours --------------------------------------------------------


def test_the_same_event_delivered_again_and_again_starts_one_run(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    source = people(500, seed=5)
    name = unique("duplicate")
    etag = upload(host, name, source.data())
    event = blob_event(host, name, etag, len(source.data()))
    # Concurrent deliveries of the same event, then one batch holding it twice.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: deliver(host, [event]), range(4)))
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert deliver(host, [event, event]).status_code == 202
    run = wait_for_run(host, name)
    assert_scored(host, name, source, run, etag)
    committed_etag = blob_service(host).get_blob_client(OUTPUT, name).get_blob_properties().etag
    # A late redelivery after the run ended: still that one run, the predictions untouched.
    assert deliver(host, [event]).status_code == 202
    time.sleep(1.0)
    assert len(runs(host, name)) == 1
    assert blob_service(host).get_blob_client(OUTPUT, name).get_blob_properties().etag == committed_etag


def test_an_old_versions_event_arriving_late_changes_nothing(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    first, second = people(100, seed=1), people(150, seed=2)
    name = unique("versions")
    etag1 = upload(host, name, first.data())
    event1 = blob_event(host, name, etag1, len(first.data()))
    assert deliver(host, [event1]).status_code == 202
    wait_for_run(host, name)
    etag2 = upload(host, name, second.data())
    event2 = blob_event(host, name, etag2, len(second.data()))
    assert deliver(host, [event2]).status_code == 202
    both = wait_for_runs(host, name, 2)
    # Event Grid delivers out of order: the first version's event again, after the second's.
    assert deliver(host, [event1]).status_code == 202
    time.sleep(1.0)
    assert len(runs(host, name)) == 2
    latest = next(r for r in both if r["input"]["request"]["etag"] == etag2)
    assert_scored(host, name, second, latest, etag2)


def test_an_event_for_a_version_already_replaced_commits_nothing(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    old, new = people(100, seed=1), people(120, seed=2)
    name = unique("replaced")
    etag_old = upload(host, name, old.data())
    etag_new = upload(host, name, new.data())
    assert deliver(host, [blob_event(host, name, etag_old, len(old.data()))]).status_code == 202
    stale = wait_for_run(host, name)
    assert stale["runtimeStatus"] == "Failed"
    assert f"{INPUT}/{name} was replaced by eTag {etag_new} before it was scored" in stale["output"]
    assert download(host, OUTPUT, name) is None
    assert deliver(host, [blob_event(host, name, etag_new, len(new.data()))]).status_code == 202
    latest = next(r for r in wait_for_runs(host, name, 2) if r["input"]["request"]["etag"] == etag_new)
    assert_scored(host, name, new, latest, etag_new)


def test_cloud_events_schema_starts_a_run(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    source = people(50, seed=9)
    name = unique("cloud")
    etag = upload(host, name, source.data())
    event = blob_event(host, name, etag, len(source.data()))
    cloud = {
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "specversion": "1.0",
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }
    assert deliver(host, cloud, cloud=True).status_code == 202
    assert_scored(host, name, source, wait_for_run(host, name), etag)


IGNORED = {
    "other-container": {"container": "uploads"},
    "not-a-csv": {"name": "notes.txt"},
    "blob-deleted": {"event_type": "Microsoft.Storage.BlobDeleted"},
}


@pytest.mark.parametrize("case", IGNORED, ids=list(IGNORED))
def test_events_that_are_not_for_scoring_are_acknowledged_and_ignored(one_chunk_host: RunningHost, case: str) -> None:
    host = one_chunk_host
    options: dict[str, Any] = dict(IGNORED[case])
    container = options.pop("container", INPUT)
    name = unique("ignored", "." + options.pop("name", "x.csv").rsplit(".", 1)[1])
    etag = upload(host, name, b"id,height\n1,170\n", container=container)
    event = blob_event(host, name, etag, 16, container=container, **options)
    response = deliver(host, [event])
    assert response.status_code == 202
    time.sleep(0.5)
    assert runs(host, name) == []
    assert download(host, OUTPUT, name) is None
    assert f"event {event['id']}" in host.log_text() and "ignored" in host.log_text()


# --- POST /api/scoring ----------------------------------------------------------------------------------------


def test_http_start_is_idempotent_per_version_and_force_scores_again(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    source = people(200, seed=4)
    name = unique("http/on demand")
    etag = upload(host, name, source.data())

    first = start(host, {"container": INPUT, "name": name})
    assert first.status_code == 202, first.text
    urls = first.json()
    assert first.headers["Location"] == urls["statusQueryGetUri"]
    run = host.wait_for_completion(urls["statusQueryGetUri"])
    assert run["instanceId"] == urls["id"]
    assert_scored(host, name, source, run, etag)

    again = start(host, {"container": INPUT, "name": name})
    assert again.status_code == 202
    assert again.json()["id"] == urls["id"]
    assert len(runs(host, name)) == 1

    forced = start(host, {"container": INPUT, "name": name, "force": True})
    assert forced.status_code == 202
    assert forced.json()["id"] != urls["id"]
    rerun = host.wait_for_completion(forced.json()["statusQueryGetUri"])
    assert_scored(host, name, source, rerun, etag)
    assert len(runs(host, name)) == 2


def test_concurrent_http_starts_of_one_version_share_one_run(one_chunk_host: RunningHost) -> None:
    host = one_chunk_host
    source = people(300, seed=6)
    name = unique("http-concurrent")
    etag = upload(host, name, source.data())
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: start(host, {"container": INPUT, "name": name}), range(4)))
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    run = host.wait_for_completion(answers[0].json()["statusQueryGetUri"])
    assert_scored(host, name, source, run, etag)
    assert len(runs(host, name)) == 1


def test_http_start_finds_the_run_the_upload_started(host: RunningHost) -> None:
    source = people(100, seed=8)
    name = unique("relayed-then-asked")
    upload(host, name, source.data())
    run = wait_for_run(host, name)
    response = start(host, {"container": INPUT, "name": name})
    assert response.status_code == 202
    assert response.json()["id"] == run["instanceId"]
    assert len(runs(host, name)) == 1


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"container": INPUT, "name": "no-such-file.csv"}, 404, f"{INPUT}/no-such-file.csv does not exist"),
        (
            {"container": "predictions", "name": "x.csv"},
            400,
            "container: expected one of the containers this app scores (SCORING_INPUT_CONTAINER): incoming, "
            'got "predictions"',
        ),
        ({"container": INPUT, "name": "notes.txt"}, 400, "name: expected a blob name ending in .csv, without"),
        ({"name": "x.csv"}, 400, "container: missing; expected a string"),
        ({"container": INPUT, "name": ""}, 400, "name: expected a blob name ending in .csv, without '.' or '..' path"),
        ({"container": INPUT, "name": "x.csv", "force": "yes"}, 400, 'force: expected true or false, got "yes"'),
        ({"container": INPUT, "name": "x.csv", "priority": 1}, 400, "priority: unknown field; accepted fields:"),
        (b"{not json", 400, "body: expected JSON such as"),
        (b"", 400, "container: missing"),
        ([INPUT, "x.csv"], 400, "body: expected a JSON object, got an array"),
    ],
)
def test_http_start_refuses_what_it_cannot_score(
    one_chunk_host: RunningHost, body: Any, status: int, expected: str
) -> None:
    response = start(one_chunk_host, body)
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]


def test_http_start_needs_the_function_key(one_chunk_host: RunningHost) -> None:
    assert start(one_chunk_host, {"container": INPUT, "name": "x.csv"}, key=False).status_code == 401


# --- faults and size ------------------------------------------------------------------------------------------


def test_workers_killed_mid_run_lose_nothing(host: RunningHost) -> None:
    source = people(120_000, seed=21)
    data = source.data()
    name = unique("killed")
    seen = len(host.log_text())
    etag = upload(host, name, data)
    workers = worker_pids(host)
    assert workers
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until a chunk of this run is being scored (its wave loaded it first)
        log = host.log_text()[seen:]
        if log.count("Executing 'Functions.score_chunk'") > log.count("Executed 'Functions.score_chunk'"):
            break
        time.sleep(0.005)
    found = runs(host, name)
    assert found and found[0]["runtimeStatus"] == "Running", found
    assert found[0]["customStatus"]["chunks_total"] > 2 * WAVE
    # Every worker dies at once: the chunks in flight are certainly lost, and must be scored again.
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    run = wait_for_run(host, name, timeout=90)
    assert_scored(host, name, source, run, etag)
    log = host.log_text()
    assert all(f"pid {pid}) exited" in log for pid in workers)
    assert "lost activity score_chunk" in log
    restarted = worker_pids(host)
    assert len(restarted) == len(workers) and not set(restarted) & set(workers)


def _large_input(megabytes: int) -> tuple[bytes, bytes]:
    """About `megabytes` MB of rows and their predictions CSV, built from the generated numbers (seconds)."""
    count = megabytes * 1_000_000 // 30
    heights = np.round(np.random.default_rng(megabytes).normal(170.0, 12.0, count), 1).tolist()
    cities = ["Oslo", "Lima", "Pune", "Kyiv", '"Austin, TX"']
    records = [f"{i},{h},{cities[i % 5]},2026-11-26" for i, h in enumerate(heights)]
    weights = predict(heights)
    header = f"id,height,city,date,{PREDICTION}\n"
    data = ("id,height,city,date\n" + "\n".join(records) + "\n").encode()
    expected = (header + "\n".join([f"{r},{w!r}" for r, w in zip(records, weights, strict=True)]) + "\n").encode()
    return data, expected


def _many_chunks_equal_one_chunk(tmp_path: Path, one_host: RunningHost, megabytes: int, chunk_bytes: int) -> None:
    settings = {
        **APP_SETTINGS,
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS),
        "SCORING_CHUNK_BYTES": str(chunk_bytes),
    }
    with ThreadPoolExecutor(1) as pool:
        generated = pool.submit(_large_input, megabytes)  # while the host starts
        many_host = start_devhost(tmp_path, settings)
        data, expected = generated.result()
    try:
        assert len(data) > megabytes * 900_000
        name = unique(f"large-{megabytes}mb")
        started = time.perf_counter()
        etag = upload(many_host, name, data)
        many = wait_for_run(many_host, name, timeout=120)
        many_seconds = time.perf_counter() - started
        upload(one_host, name, data)
        assert start(one_host, {"container": INPUT, "name": name}).status_code == 202
        one = wait_for_run(one_host, name, timeout=120)
        one_seconds = time.perf_counter() - started - many_seconds
        assert many["output"]["chunks"] >= len(data) // chunk_bytes
        assert one["output"]["chunks"] == 1
        output = download(many_host, OUTPUT, name)
        assert output == expected  # compared whole first: a mismatch must not print 20 MB
        assert download(one_host, OUTPUT, name) == output
        assert metadata(many_host, OUTPUT, name)["source_etag"].strip('"') == etag
        print(
            f"{len(data) / 1e6:.0f} MB: {many['output']['chunks']} chunks in {many_seconds:.1f} s, "
            f"one chunk in {one_seconds:.1f} s (upload to committed predictions)"
        )
    finally:
        many_host.stop()


def test_a_20_mb_input_in_many_chunks_equals_a_one_chunk_run(tmp_path: Path, one_chunk_host: RunningHost) -> None:
    _many_chunks_equal_one_chunk(tmp_path, one_chunk_host, 20, 1024 * 1024)


@pytest.mark.soak
def test_a_100_mb_input_in_4_mib_chunks_equals_a_one_chunk_run(tmp_path: Path, one_chunk_host: RunningHost) -> None:
    _many_chunks_equal_one_chunk(tmp_path, one_chunk_host, 100, 4 * 1024 * 1024)
