"""The compute run's blobs against Azurite: conditional ledger and state writes, the shared write bucket under
concurrency, the report streamed from its parts, and a malformed COMPUTE_SCHEDULES reported once per value."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.arm_budget import FULL_BUCKET_LAG_SECONDS, reserve_shared_writes
from shared.compute.ledger import Ledger, LedgerItem, LedgerStore
from shared.compute.reconcile_state import Claim, Progress, ReadState, config_error_is_new, update_state
from shared.compute.report_assembly import AssembleRequest, assemble
from shared.errors import OutputChangedError

NOW = datetime(2026, 11, 30, 7, 0, 20, tzinfo=UTC)


@pytest.fixture
def container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh reports container; the app's code finds it through its settings, as in Azure."""
    name = f"r{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("DATA_STORAGE", azurite.connection_string)
    monkeypatch.setenv("REPORTS_CONTAINER", name)
    blobs.ensure_container(name)
    yield name


def test_a_ledger_written_by_someone_else_since_it_was_read_is_not_overwritten(container: str) -> None:
    first, second = LedgerStore(container), LedgerStore(container)
    ledger = Ledger(
        "run", "shutdown", "s/r/w", NOW.isoformat(), items=(LedgerItem("ci", "Running", "stop", "x", "stop"),)
    )
    first.write("runs/run/l.json", ledger, create=True)
    with pytest.raises(OutputChangedError):
        second.write("runs/run/l.json", ledger, create=True)  # a second plan of the same workspace
    mine, theirs = first.read("runs/run/l.json"), second.read("runs/run/l.json")
    assert mine is not None and theirs is not None
    theirs.steps = 1
    second.write("runs/run/l.json", theirs)
    with pytest.raises(OutputChangedError):
        first.write("runs/run/l.json", mine)  # a step that lost the race raises: it is run again from storage


def test_concurrent_claims_on_one_workspace_state_give_one_winner(container: str) -> None:
    winners: list[str] = []
    lock = threading.Lock()

    def claim(run: str) -> None:
        def change(read: ReadState) -> tuple[bool, bool]:
            progress = read.state.schedules.setdefault("office", Progress(NOW - timedelta(minutes=1)))
            if progress.claim is not None:
                return False, False
            progress.claim = Claim(run, NOW, NOW + timedelta(minutes=3), NOW)
            return True, True

        won, _ = update_state(container, "sub/rg/ws", NOW, NOW, change)
        if won:
            with lock:
                winners.append(run)

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    stored = json.loads(blobs.read_blob(container, "reconcile/state/sub/rg/ws.json"))
    assert stored["schedules"]["office"]["claim"]["run"] == winners[0]


def test_the_shared_write_bucket_hands_out_each_token_once_across_writers(container: str) -> None:
    balances: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        balance = reserve_shared_writes(container, "sub", 50, now=1000.0)
        with lock:
            balances.append(balance)

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 6 steps of 50 POSTs at one instant: each saw the balance the previous left (200, 150, ..., -50).
    assert sorted(balances, reverse=True) == [200.0, 150.0, 100.0, 50.0, 0.0, -50.0]
    # Refilled at 10/s, counted from when the first burst reaches ARM (a full bucket refills nothing before).
    assert reserve_shared_writes(container, "sub", 0, now=1010.0) == -100.0 + 10 * (10 - FULL_BUCKET_LAG_SECONDS)


def test_the_report_is_streamed_from_the_parts_head_first_and_the_working_blobs_go(container: str) -> None:
    parts = {}
    for ws, names in (("s/r/b", ["ci-3", "ci-4"]), ("s/r/a", ["ci-1", "ci-2"]), ("s/r/c", [])):
        blob = f"runs/run-1/{ws[-1]}.part.json"
        blobs.upload(container, blob, json.dumps([{"workspace": ws, "name": n} for n in names]).encode())
        parts[ws] = blob
    blobs.upload(container, "runs/run-1/a.ledger.json", b"{}")
    head = {"instance_id": "run-1", "totals": {"stopped": 4}, "arm_requests": {"reads": 1}, "workspaces": []}
    saved = assemble(AssembleRequest("run-1", "shutdown/2026/11/30/run-1.json", head, parts))
    assert saved == f"{container}/shutdown/2026/11/30/run-1.json"
    report = json.loads(blobs.read_blob(container, "shutdown/2026/11/30/run-1.json"))
    assert list(report) == ["instance_id", "totals", "arm_requests", "workspaces", "instances"]
    assert [(i["workspace"], i["name"]) for i in report["instances"]] == [
        ("s/r/a", "ci-1"),
        ("s/r/a", "ci-2"),
        ("s/r/b", "ci-3"),
        ("s/r/b", "ci-4"),
    ]
    assert blobs.list_names(container, "runs/run-1/") == []
    # A repeat of the assembly (an activity runs at least once) finds its report and the parts gone: no harm.
    assert assemble(AssembleRequest("run-1", "shutdown/2026/11/30/run-1.json", head, parts)) == saved
    assert json.loads(blobs.read_blob(container, "shutdown/2026/11/30/run-1.json")) == report


def test_a_malformed_schedule_value_is_reported_once_per_distinct_value(container: str) -> None:
    text = '[{"name": "x"}]'
    assert config_error_is_new(container, text, "schedule 'x': ...", NOW)
    assert not config_error_is_new(container, text, "schedule 'x': ...", NOW + timedelta(minutes=1))
    assert config_error_is_new(container, '[{"name": "y"}]', "schedule 'y': ...", NOW + timedelta(minutes=2))
    assert config_error_is_new(container, text, "schedule 'x': ...", NOW + timedelta(minutes=3))  # changed back


def test_an_endpoint_that_reports_no_write_limit_is_not_paced(container: str) -> None:
    """ARM always says how many writes remain; an endpoint that does not (a stand-in without limits) is not paced,
    across processes too, as the per-process copy already did."""
    from shared.arm_budget import remember_limits, write_bucket

    sub = f"sub-{uuid.uuid4().hex[:8]}"
    assert reserve_shared_writes(container, sub, 200, now=1000.0) == 200.0
    assert reserve_shared_writes(container, sub, 200, now=1000.0) == 0.0  # paced: nothing said otherwise yet
    write_bucket(sub).unlimited()  # a write was answered without x-ms-ratelimit-remaining-subscription-writes
    remember_limits(container, sub, now=1001.0)
    assert reserve_shared_writes(container, sub, 200, now=1002.0) == float("inf")
    write_bucket(sub).observe(150.0)  # the endpoint reports a limit after all
    remember_limits(container, sub, now=1003.0)
    assert reserve_shared_writes(container, sub, 10, now=1003.0) < 200.0


def test_a_saved_report_is_in_its_months_index_so_no_reader_reads_it_and_concurrent_runs_keep_theirs(
    container: str,
) -> None:
    from shared.compute import run_reports

    head = {"instance_id": "run-1", "trigger": "timer", "totals": {"stopped": 4}, "workspaces": []}
    assemble(AssembleRequest("run-1", "shutdown/2026/11/30/run-1.json", head, {}))
    index = json.loads(blobs.read_blob(container, "index/2026-11.json"))
    # Only the fields the readers use (never `workspaces`): the index stays small with thousands of runs.
    assert index["reports"] == {
        "shutdown/2026/11/30/run-1.json": {"instance_id": "run-1", "trigger": "timer", "totals": {"stopped": 4}}
    }

    # Eight runs saving their reports at once: each one's conditional write keeps the others' additions.
    names = [f"reconcile/2026/11/30/run-{k}.json" for k in range(8)]
    threads = [
        threading.Thread(target=run_reports.note_report, args=(container, name, {"instance_id": name, "totals": {}}))
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    index = json.loads(blobs.read_blob(container, "index/2026-11.json"))
    assert set(index["reports"]) == {"shutdown/2026/11/30/run-1.json", *names}

    # A fresh process (nothing cached) reads the month from the index alone: no report blob is opened.
    for name in names:
        blobs.upload(container, name, b"not a report: reading it would show as unreadable")
    run_reports.HEADS.clear()
    month = run_reports.month_heads(container, "2026-11")
    assert not month.unreadable
    assert len(month.heads) == 9
