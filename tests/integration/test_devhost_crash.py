"""What devhost keeps when it is killed (SIGKILL) and started again on the same data directory, and settings too
large to pass through exec: the README's "What devhost keeps across a crash" says the same."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.scoring import APP_SETTINGS, SUBSCRIPTIONS, assert_scored, people, runs, unique, wait_for_run
from tests.helpers.storage import blob_service, upload
from tests.reliability import TestRecorder

pytestmark = pytest.mark.integration

APP = APP_ROOT / "tests" / "http_api_app"
DURABLE = "/runtime/webhooks/durabletask"


def _settings(data: Path, **extra: str) -> dict[str, str]:
    (data / "app").mkdir(parents=True, exist_ok=True)
    return {"APP_STATE_DIR": str(data / "app"), "BLOB_WORK_SECONDS": "0", **extra}


def _kill(host: RunningHost, group: bool = False) -> None:
    if group:
        os.killpg(host.proc.pid, signal.SIGKILL)  # what `kill -9 %1` does to `make run &`
    else:
        host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(timeout=10)


def _restart(host: RunningHost, data: Path, settings: dict[str, str], group: bool = False) -> RunningHost:
    # `make run` again: the same data directory and ports, right away.
    port = int(host.base_url.rsplit(":", 1)[1])
    return start_devhost(
        data, settings, script_root=APP, workers=1, azurite_port=host.azurite_port, port=port, own_process_group=group
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("group", [False, True], ids=["devhost", "its process group"])
def test_blob_writes_survive_a_kill_9_right_after_them(tmp_path: Path, group: bool, reliability: TestRecorder) -> None:
    # Azurite keeps its metadata in memory and saves it every 5 s and when it shuts down. A SIGKILL to devhost's
    # process group used to kill Azurite too, losing the last seconds of writes; now Azurite runs in its own session,
    # gets SIGTERM when devhost dies, and a devhost started at once waits for that save instead of loading older
    # metadata (and then overwriting the save).
    settings = _settings(tmp_path)
    host = start_devhost(tmp_path, settings, script_root=APP, workers=1, own_process_group=group)
    container = blob_service(host).get_container_client("crash")
    container.create_container()
    written = {f"blob-{i:02d}.txt": f"version {i} of {time.time_ns()}".encode() for i in range(20)}
    for name, data in written.items():
        container.upload_blob(name, data)
    container.upload_blob("blob-00.txt", b"overwritten last", overwrite=True)
    written["blob-00.txt"] = b"overwritten last"
    _kill(host, group)
    again = _restart(host, tmp_path, settings, group)
    try:
        after = blob_service(again).get_container_client("crash")
        found = {blob.name: after.download_blob(blob.name).readall() for blob in after.list_blobs()}
        assert found == written
    finally:
        again.stop()
    reliability.record(
        "fault",
        f"{'devhost' if not group else 'devhost process group'} SIGKILLed right after 21 blob writes, "
        "started again at once on the same data dir and ports",
        tries=1,
        outcome="every write read back after the restart",
        data_lost=len(set(written) - set(found)),
    )


def test_an_upload_whose_work_a_crash_lost_is_delivered_again(tmp_path: Path, reliability: TestRecorder) -> None:
    # On Azure the orchestration the event started survives a host crash in the task hub; devhost's engine is in
    # memory, so its relay delivers the event again after a restart (Event Grid delivers at least once).
    subscriptions = [{"function": "on_blob", "subjectBeginsWith": "/blobServices/default/containers/drop/"}]
    settings = _settings(tmp_path, BLOB_WORK_SECONDS="3", DEVHOST_EVENTGRID_SUBSCRIPTIONS=json.dumps(subscriptions))
    host = start_devhost(tmp_path, settings, script_root=APP, workers=1)
    blob_service(host).get_container_client("drop").upload_blob("report.csv", b"a,b\n1,2\n")
    started, done = tmp_path / "app" / "started.jsonl", tmp_path / "app" / "done.jsonl"
    deadline = time.monotonic() + 30
    while not _lines(started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lines(started), host.log_text()[-2000:]
    _kill(host)  # the orchestration waits on its 3 s timer: it dies with the engine
    assert not _lines(done)
    again = _restart(host, tmp_path, settings)
    try:
        deadline = time.monotonic() + 60
        while not _lines(done) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [line["subject"] for line in _lines(done)] == ["/blobServices/default/containers/drop/blobs/report.csv"]
        events = [line["event"] for line in _lines(started)]
        assert len(events) == 2 and events[0] == events[1]  # the same event again, as Event Grid retries it
        assert "delivering again" in again.log_text()
        # Once its work ended the event is forgotten: another restart delivers nothing.
        final = f"{again.base_url}{DURABLE}/instances/{_lines(started)[-1]['instance']}?code={again.key}"
        assert again.wait_for_completion(final)["runtimeStatus"] == "Completed"
        time.sleep(1.0)  # a few relay passes: the relay sees the work ended
        again.stop()
        again = _restart(again, tmp_path, settings)
        time.sleep(2)
        assert len(_lines(started)) == 2
    finally:
        again.stop()
    reliability.record(
        "fault",
        "devhost SIGKILLed while an uploaded file's orchestration ran; started again",
        tries=1,
        outcome="the relay delivered the event again (same id) and the work completed once",
        data_lost=0,
    )


def test_a_blob_uploaded_while_devhost_was_down_is_delivered(tmp_path: Path) -> None:
    subscriptions = [{"function": "on_blob", "subjectBeginsWith": "/blobServices/default/containers/drop/"}]
    settings = _settings(tmp_path, DEVHOST_EVENTGRID_SUBSCRIPTIONS=json.dumps(subscriptions))
    host = start_devhost(tmp_path, settings, script_root=APP, workers=1, azurite=True)
    storage = host.storage_connection_string
    host.stop()
    from devhost.azurite import Azurite

    with Azurite(tmp_path / "state" / "azurite", port=host.azurite_port):
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(storage).get_container_client("drop").upload_blob("late.csv", b"x\n")
    again = _restart(host, tmp_path, settings)
    try:
        done = tmp_path / "app" / "done.jsonl"
        deadline = time.monotonic() + 30
        while not _lines(done) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [line["subject"] for line in _lines(done)] == ["/blobServices/default/containers/drop/blobs/late.csv"]
    finally:
        again.stop()


def test_a_setting_over_128_kib_reaches_the_app_in_the_host_and_in_workers(tmp_path: Path) -> None:
    # Linux refuses to start a program with an environment string over 128 KiB (E2BIG): devhost used to pass every
    # setting to Azurite and stopped at start with "Argument list too long".
    big = "x" * (200 * 1024)
    host = start_devhost(tmp_path, _settings(tmp_path, BIG_SETTING=big), script_root=APP, workers=1)
    try:
        in_host = requests.get(f"{host.base_url}/api/setting/BIG_SETTING?code={host.key}", timeout=30)
        assert in_host.json() == {"length": len(big)}
        started = host.request("POST", f"{DURABLE}/orchestrators/setting_orchestrator", json="BIG_SETTING")
        final = host.wait_for_completion(started.json()["statusQueryGetUri"])
        assert final["output"] == {"length": len(big)}  # the activity ran in a worker process
        blob_service(host).get_container_client("big").create_container()  # Azurite runs
        spill = tmp_path / "state" / "worker-settings.json"
        assert spill.stat().st_mode & 0o777 == 0o600
    finally:
        host.stop()
    assert not (tmp_path / "state" / "worker-settings.json").exists()


def test_a_file_whose_scoring_run_a_crash_lost_is_scored_after_the_restart(tmp_path: Path) -> None:
    # The app itself: an upload to `incoming` starts a scoring run through the relay; devhost dies mid-run.
    settings = {**APP_SETTINGS, "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS)}
    host = start_devhost(tmp_path, settings, workers=1)
    source = people(100_000)
    name = unique("crash")
    etag = upload(host, name, source.data())
    deadline = time.monotonic() + 60
    while not runs(host, name) and time.monotonic() < deadline:
        time.sleep(0.02)
    lost = runs(host, name)
    assert [run["runtimeStatus"] for run in lost] == ["Running"], lost
    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(timeout=10)
    port = int(host.base_url.rsplit(":", 1)[1])
    again = start_devhost(tmp_path, settings, workers=1, azurite_port=host.azurite_port, port=port)
    try:
        run = wait_for_run(again, name, timeout=120)
        assert run["instanceId"] == lost[0]["instanceId"]  # the same run id: derived from the blob version
        assert_scored(again, name, source, run, etag)
    finally:
        again.stop()
