"""Measured savings: the app's stops are closed by what ARM shows (the real MLClient against the ARM stand-in, a
person starting an instance through the same API), stored per workspace in Azurite, summed per month."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import make_local_tls
from shared import blobs
from shared.compute import arm, measured
from shared.compute.arm import ComputeInstance
from shared.compute.measured import StoppedInstance
from shared.settings import Workspace
from tests.helpers.standins import use_identity_standin

SUB = "0a1b2c3d-0000-4000-8000-0000000005a7"
WS = Workspace(SUB, "rg-ml", "ws-measured")


def _compute(name: str, state: str) -> dict[str, Any]:
    return {"name": name, "properties": {"computeType": "ComputeInstance", "properties": {"state": state}}}


FLEET = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-ml",
            "name": "ws-measured",
            "computes": [_compute(n, "Stopped") for n in ("ci-started", "ci-idle", "ci-no-op", "ci-other")],
        }
    ],
}


@pytest.fixture(scope="module")
def arm_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArmStandin, Any, IdentityStandin]]:
    tls = make_local_tls(tmp_path_factory.mktemp("tls"))
    with (
        IdentityStandin() as identity,
        ArmStandin(FLEET, tls, transition_seconds=0.2, page_size=2, token_validator=identity.is_valid) as standin,
    ):
        yield standin, tls, identity


@pytest.fixture
def env(azurite: Azurite, arm_standin, monkeypatch) -> dict[str, str]:
    standin, tls, identity = arm_standin
    standin.reload(FLEET)
    use_identity_standin(monkeypatch, identity, tls)
    values = {
        "DATA_STORAGE": azurite.connection_string,
        "REPORTS_CONTAINER": f"r{uuid.uuid4().hex[:12]}",
        "AML_WORKSPACES": WS.key,
        "AML_ARM_ENDPOINT": standin.base_url + "/",
        "AML_POLLING_INTERVAL_SECONDS": "0.1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _wait_running(name: str) -> None:
    deadline = time.monotonic() + 10
    while arm.get_state(WS, name) != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_a_start_after_our_stop_closes_the_interval_at_arms_start_time(env, arm_standin) -> None:
    standin = arm_standin[0]
    stopped_at = datetime.now(UTC) - timedelta(hours=2)
    measured.record_stops(
        WS.key, [StoppedInstance(n, _iso(stopped_at), 0.5, "USD") for n in ("ci-started", "ci-idle", "ci-no-op")], env
    )
    assert arm.begin_start(WS, "ci-started").status == "starting"  # a person starts it (ARM notes the operation)
    started = datetime.now(UTC)
    _wait_running("ci-started")
    standin.set_state(WS.key, "ci-no-op", "Running")  # running again, but ARM names no operation
    standin.reset_counts()

    later = datetime.now(UTC) + timedelta(minutes=1)
    observed = measured.observe_due(later, env)
    assert observed == {WS.key: {"closed": 2}}
    reads = standin.request_counts()
    assert reads == {"reads": 2, "writes": 0}  # one listing: 4 instances in pages of 2
    assert measured.observe_due(later + timedelta(minutes=5), env) == {}  # observed lately: no listing
    assert standin.request_counts() == reads

    month = measured.measured_month(later.year, later.month, later, env)
    # ci-started: 2 h (until ARM's Start); ci-no-op: until it was seen running; ci-idle: still stopped, until now.
    assert month.instances == 3 and month.still_stopped == 1 and month.workspaces == 1
    expected = 2.0 + (later - stopped_at).total_seconds() / 3600 * 2
    if stopped_at.month != later.month:  # run across a month boundary: only this month's part counts
        pytest.skip("the test ran across a month boundary")
    assert abs(month.stopped_hours - expected) < 0.05
    assert abs(month.savings_by_currency["USD"] - expected * 0.5) < 0.05
    record = measured._read(WS.key, env)[0].instances
    started_hours = record["ci-started"].months[f"{later:%Y-%m}"].hours
    assert abs(started_hours - (started - stopped_at).total_seconds() / 3600) < 0.02
    assert record["ci-idle"].open_since == _iso(stopped_at)


def test_nothing_stopped_means_no_listing_and_no_blob(env, arm_standin) -> None:
    standin = arm_standin[0]
    standin.reset_counts()
    assert measured.observe_due(datetime.now(UTC), env) == {}
    assert standin.request_counts() == {"reads": 0, "writes": 0}
    assert blobs.list_names(env["REPORTS_CONTAINER"], "measured/", env) == []
    measured.observe(WS.key, arm.list_instances(WS), datetime.now(UTC), env)  # a run's listing: no write either
    assert blobs.list_names(env["REPORTS_CONTAINER"], "measured/", env) == []


def test_a_listing_the_run_makes_closes_intervals_too_and_a_deleted_instance_is_closed(env) -> None:
    at = datetime(2026, 11, 10, 22, 0, tzinfo=UTC)
    measured.record_stops(WS.key, [StoppedInstance("ci-gone", _iso(at), 1.0, "EUR")], env)
    measured.record_stops(WS.key, [StoppedInstance("ci-back", _iso(at), 1.0, "EUR")], env)
    seen = at + timedelta(hours=10)
    listed = [ComputeInstance(WS.key, "ci-back", "JobRunning")]
    assert measured.observe(WS.key, listed, seen, env) == 2
    month = measured.measured_month(2026, 11, datetime(2026, 12, 1, tzinfo=UTC), env)
    assert month.stopped_hours == 20.0 and month.savings_by_currency == {"EUR": 20.0} and month.still_stopped == 0


def test_hours_are_split_at_month_ends_and_currencies_are_never_added(env) -> None:
    stop = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    measured.record_stops(
        WS.key,
        [StoppedInstance("ci-usd", _iso(stop), 2.0, "USD"), StoppedInstance("ci-eur", _iso(stop), 3.0, "EUR")],
        env,
    )
    start = {"operation_name": "Start", "operation_status": "Succeeded", "operation_time": "2026-11-01T01:30:00Z"}
    listed = [ComputeInstance(WS.key, n, "Running", last_operation=start) for n in ("ci-usd", "ci-eur")]
    measured.observe(WS.key, listed, datetime(2026, 11, 1, 6, 0, tzinfo=UTC), env)
    october = measured.measured_month(2026, 10, datetime(2026, 12, 1, tzinfo=UTC), env)
    november = measured.measured_month(2026, 11, datetime(2026, 12, 1, tzinfo=UTC), env)
    assert (october.stopped_hours, october.savings_by_currency) == (2.0, {"EUR": 3.0, "USD": 2.0})
    assert (november.stopped_hours, november.savings_by_currency) == (3.0, {"EUR": 4.5, "USD": 3.0})


def test_a_start_before_our_stop_is_not_taken_for_a_restart(env) -> None:
    stop = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    measured.record_stops(WS.key, [StoppedInstance("ci-x", _iso(stop), None, None)], env)
    old = {"operation_name": "Start", "operation_time": "2026-11-20T08:00:00Z"}
    seen = stop + timedelta(hours=3)
    measured.observe(WS.key, [ComputeInstance(WS.key, "ci-x", "Running", last_operation=old)], seen, env)
    month = measured.measured_month(2026, 11, datetime(2026, 12, 1, tzinfo=UTC), env)
    assert month.stopped_hours == 3.0 and month.unpriced_hours == 3.0 and month.savings_by_currency == {}


def test_storage_stays_bounded_by_instances_not_runs(env) -> None:
    base = datetime(2026, 1, 1, 22, 0, tzinfo=UTC)
    for day in range(60):  # 60 nightly stops and morning starts of the same instance
        at = base + timedelta(days=day)
        measured.record_stops(WS.key, [StoppedInstance("ci-daily", _iso(at), 0.1, "USD")], env)
        start = {"operation_name": "Start", "operation_time": _iso(at + timedelta(hours=10))}
        measured.observe(
            WS.key,
            [ComputeInstance(WS.key, "ci-daily", "Running", last_operation=start)],
            at + timedelta(hours=11),
            env,
        )
    size = blobs.blob_info(env["REPORTS_CONTAINER"], measured.blob_name(WS.key), env).size
    assert size < 600  # one instance, three months of totals
    march = measured.measured_month(2026, 3, datetime(2026, 4, 1, tzinfo=UTC), env)
    assert march.stopped_hours == 8.0 + 10.0  # Feb 28 22:00 -> Mar 1 08:00 (its March part), Mar 1 22:00 -> 08:00


def test_split_by_month() -> None:
    hours = measured.split_by_month(datetime(2026, 12, 31, 20, tzinfo=UTC), datetime(2027, 1, 1, 2, tzinfo=UTC))
    assert hours == {"2026-12": 4.0, "2027-01": 2.0}
