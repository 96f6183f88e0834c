"""Compute shutdown end to end: the real app on devhost, its real MLClient against the ARM and identity stand-ins
running in this process (so each test seeds the fleet, injects faults and reads the instances' states)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import LocalTls, make_local_tls
from tests.devhost_runner import TERMINAL, RunningHost, start_devhost
from tests.helpers.standins import ca_bundle_with, compute_settings
from tests.helpers.storage import blob_service

pytestmark = pytest.mark.integration

SUB = "0a1b2c3d-0000-4000-8000-00000000f00d"
WS_A = f"{SUB}/rg-ml-dev/ws-alpha"
WS_B = f"{SUB}/rg-ml-prod/ws-beta"
TRANSITION_SECONDS = 0.5  # each stop takes this long in the stand-in
STOP_TIMEOUT_SECONDS = 4  # several polls of 1 s: a 409 re-check fits, a stop that never ends does not
DURABLE = "/runtime/webhooks/durabletask"


def _instance(name: str, state: str = "Running", compute_type: str = "ComputeInstance", **tags: str) -> dict[str, Any]:
    return {
        "name": name,
        "tags": {k.replace("_", "-"): v for k, v in tags.items()},
        "properties": {"computeType": compute_type, "properties": {"state": state, "idleTimeBeforeShutdown": "PT60M"}},
    }


FLEET: dict[str, Any] = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-ml-dev",
            "name": "ws-alpha",
            "computes": [
                _instance("ci-alice", owner="alice"),
                _instance("ci-bob", owner="bob", auto_shutdown="off"),
                _instance("ci-carol", "Stopped", owner="carol"),
                _instance("ci-dave", "JobRunning", owner="dave"),
                _instance("ci-erin", owner="erin", keep_alive_until="2099-12-31T00:00:00Z"),
                {"name": "cpu-cluster", "properties": {"computeType": "AmlCompute", "properties": {}}},
            ],
        },
        {
            "subscription": SUB,
            "resource_group": "rg-ml-prod",
            "name": "ws-beta",
            "computes": [
                _instance("ci-frank", owner="frank", auto_shutdown="on"),
                _instance("ci-grace", owner="grace", keep_alive_until="next week"),
                _instance("ci-heidi", "Starting", owner="heidi"),
                _instance("gpu-train", owner="platform"),
            ],
        },
    ],
}

# What the policy makes of FLEET: (workspace, name) -> (state before, decision, outcome, words of the reason).
EXPECTED: dict[tuple[str, str], tuple[str, str, str, str]] = {
    (WS_A, "ci-alice"): ("Running", "stop", "stopped", "stop (Running, opt-out mode)"),
    (WS_A, "ci-bob"): ("Running", "skip", "skipped", "exempt: tagged auto-shutdown=off"),
    (WS_A, "ci-carol"): ("Stopped", "already_stopped", "already_stopped", "already Stopped"),
    (WS_A, "ci-dave"): ("JobRunning", "skip", "skipped", "JobRunning: a job is running"),
    (WS_A, "ci-erin"): ("Running", "skip", "skipped", "kept alive until 2099-12-31"),
    (WS_B, "ci-frank"): ("Running", "stop", "stopped", "stop (Running, opt-out mode"),
    (WS_B, "ci-grace"): ("Running", "stop", "stopped", "keep-alive-until='next week' is not an ISO 8601 time"),
    (WS_B, "ci-heidi"): ("Starting", "skip", "skipped", "state Starting: not Running"),
    (WS_B, "gpu-train"): ("Running", "stop", "stopped", "stop (Running, opt-out mode)"),
}
TO_STOP = {key for key, (_, decision, _, _) in EXPECTED.items() if decision == "stop"}
INITIAL = {key: state for key, (state, _, _, _) in EXPECTED.items()}


@dataclass
class Standins:
    """What every devhost of the module shares: the stand-ins' TLS, the CA bundle, the identity endpoint."""

    tls: LocalTls
    ca_bundle: Path
    identity: IdentityStandin

    def settings(self, arm: ArmStandin, **extra: str) -> dict[str, str]:
        return {
            **compute_settings(self.identity, arm, FLEET, self.ca_bundle),
            "DATA_STORAGE": "UseDevelopmentStorage=true",
            "SHUTDOWN_POLL_SECONDS": "1",
            "SHUTDOWN_STOP_TIMEOUT_SECONDS": str(STOP_TIMEOUT_SECONDS),
            "AML_POLLING_INTERVAL_SECONDS": "0.2",
            "AML_HTTP_BACKOFF_SECONDS": "0.05",
            "PRICE_OVERRIDES": '{"STANDARD_DS3_V2": 0.3}',  # no request to the public prices API from tests
            **extra,
        }

    def arm(self) -> ArmStandin:
        return ArmStandin(
            FLEET, self.tls, transition_seconds=TRANSITION_SECONDS, token_validator=self.identity.is_valid
        )


@dataclass
class Bench:
    """A devhost running the app and the ARM stand-in it talks to."""

    host: RunningHost
    arm: ArmStandin
    standins: Standins
    # The second devhost, whose nightly timer fires every 3 s, and its own fleet.
    timer_host: Future[RunningHost] | None = None
    timer_arm: ArmStandin | None = None

    @property
    def identity(self) -> IdentityStandin:
        return self.standins.identity


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standins]:
    data = tmp_path_factory.mktemp("shutdown-standins")
    tls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    with IdentityStandin() as identity:
        yield Standins(tls, ca_bundle, identity)


@pytest.fixture(scope="module")
def bench(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """The devhost most tests share, and (booting meanwhile, see `timer_bench`) the nightly timer's own one."""
    with standins.arm() as arm, standins.arm() as timer_arm, ThreadPoolExecutor(2) as pool:
        # The nightly timer must have a schedule; 1 January at midnight never comes during a test. One worker
        # process: it pays the SDK's import once (in the warm-up below), so no test's stop timeout includes it.
        settings = standins.settings(arm, SHUTDOWN_SCHEDULE="0 0 0 1 1 *")
        host = start_devhost(tmp_path_factory.mktemp("shutdown-devhost"), settings, workers=1)
        # A schedule every 3 s and SHUTDOWN_DRY_RUN=true, on the first devhost's Azurite. It boots and runs
        # while the other tests do (its runs are dry and touch only its own fleet): the module stays fast.
        timer_settings = standins.settings(timer_arm, SHUTDOWN_SCHEDULE="*/3 * * * * *", SHUTDOWN_DRY_RUN="true")
        timer_host = pool.submit(
            start_devhost,
            tmp_path_factory.mktemp("timer-devhost"),
            timer_settings,
            workers=1,
            azurite=False,
            azurite_port=host.azurite_port,
        )
        try:
            running = Bench(host, arm, standins, timer_host, timer_arm)
            _run(running, {"dry_run": True})
            yield running
        finally:
            stopping = pool.submit(_stop_once_started, timer_host)
            host.stop()
            stopping.result()


def _stop_once_started(starting: Future[RunningHost]) -> None:
    if starting.exception() is None:  # a host that failed to start has nothing to stop; its test says why
        starting.result().stop()


@pytest.fixture
def timer_bench(bench: Bench) -> Bench:
    assert bench.timer_host is not None and bench.timer_arm is not None
    return Bench(bench.timer_host.result(timeout=120), bench.timer_arm, bench.standins)


@pytest.fixture
def fleet(bench: Bench) -> Bench:
    """A fresh FLEET, no faults, normal transitions, for each test (the devhost and its endpoints stay)."""
    bench.arm.reload(FLEET)
    bench.arm.transition_seconds = TRANSITION_SECONDS
    return bench


# --- helpers ------------------------------------------------------------------------------------------------------


def _secrets_absent(bench: Bench, *texts: str) -> None:
    """Neither a bearer token the identity stand-in issued nor the IDENTITY_HEADER secret appears anywhere."""
    for text in texts:
        assert bench.identity.header_secret not in text
        assert "fake-mi-" not in text  # every token the identity stand-in issues starts so
        assert "bearer " not in text.lower()


def _saved_report(host: RunningHost, blob_name: str) -> dict[str, Any]:
    data = blob_service(host).get_blob_client("reports", blob_name).download_blob().readall()
    report: dict[str, Any] = json.loads(data)
    return report


def _start(host: RunningHost, body: Any = None) -> dict[str, Any]:
    response = host.request("POST", "/api/shutdown", data=b"" if body is None else json.dumps(body))
    assert response.status_code == 202, response.text
    urls: dict[str, Any] = response.json()
    assert response.headers["Location"] == urls["statusQueryGetUri"]
    return urls


def _finish(bench: Bench, status_url: str, expect: str = "Completed") -> dict[str, Any]:
    """Follows the status URL to the end; checks the status output is the saved report's summary, and no secret
    leaks. The saved report (every instance) is returned as `status["report"]`."""
    status = bench.host.wait_for_completion(status_url, timeout=45)
    assert status["runtimeStatus"] == expect, json.dumps(status, indent=1)
    _secrets_absent(bench, json.dumps(status))
    if expect == "Completed":
        summary: dict[str, Any] = status["output"]
        started = datetime.fromisoformat(summary["started_at"])
        blob = f"shutdown/{started:%Y/%m/%d}/{status['instanceId']}.json"
        assert summary["report_blob"] == f"reports/{blob}"
        assert summary["report_error"] is None
        saved = _saved_report(bench.host, blob)
        # The output is the report less its instances, plus where it went and the first failures (issue 20).
        assert "instances" not in summary
        assert {k: v for k, v in saved.items() if k != "instances"} == {
            k: v for k, v in summary.items() if k not in ("report_blob", "report_error", "failures")
        }
        assert list(saved)[-1] == "instances"  # every other field first: a reader can stop before the instances
        failed = [i for i in saved["instances"] if i["outcome"] in ("failed", "timed_out")]
        assert summary["failures"] == failed[:20]
        _secrets_absent(bench, json.dumps(saved))
        status["report"] = saved
    return status


def _run(bench: Bench, body: Any = None, expect: str = "Completed") -> dict[str, Any]:
    return _finish(bench, _start(bench.host, body)["statusQueryGetUri"], expect)


def _by_key(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["workspace"], r["name"]): r for r in report["instances"]}


def _stop_requests(arm: ArmStandin, name: str) -> list[int]:
    return [r.status for r in arm.requests("POST", rf"/computes/{name}/stop$")]


def _fault_on_stop(arm: ArmStandin, name: str, **rule: Any) -> None:
    arm.add_fault({"method": "POST", "path_regex": rf"/computes/{name}/stop$", **rule})


# --- the whole fleet ------------------------------------------------------------------------------------------------


def test_shutdown_stops_the_fleet_per_policy_and_saves_the_report(fleet: Bench) -> None:
    status = _run(fleet)
    report = status["report"]
    results = _by_key(report)
    assert set(results) == set(EXPECTED)  # the AmlCompute cluster is no compute instance: not listed
    for key, (state, decision, outcome, reason) in EXPECTED.items():
        result = results[key]
        assert (result["state_before"], result["decision"], result["outcome"]) == (state, decision, outcome), key
        assert reason in result["reason"], (key, result["reason"])
        assert result["error"] is None
    assert all(results[key]["seconds"] > 0 for key in TO_STOP)
    # Savings: 4 stops of DS3_v2 at the PRICE_OVERRIDES rate, each until the next SHUTDOWN_SCHEDULE run.
    assert report["totals"]["currency"] == "USD"
    assert report["totals"].pop("estimated_savings") == pytest.approx(
        sum(results[key]["estimated_savings"] for key in TO_STOP), abs=0.011
    )
    assert {results[key]["price_source"] for key in TO_STOP} == {"override"}
    del report["totals"]["currency"]
    by_currency = report["totals"].pop("estimated_savings_by_currency")
    assert list(by_currency) == ["USD"]
    assert report["totals"] == {
        "stopped": 4,
        "started": 0,
        "already_stopped": 1,
        "skipped": 4,
        "failed": 0,
        "timed_out": 0,
        "instances": 9,
        "workspaces": 2,
        "workspaces_failed": 0,
    }
    assert report["workspaces"] == [
        {"workspace": WS_A, "instances": 5, "error": None},
        {"workspace": WS_B, "instances": 4, "error": None},
    ]
    assert (report["trigger"], report["dry_run"], report["mode"]) == ("http", False, "opt-out")
    assert datetime.fromisoformat(report["started_at"]).utcoffset() is not None  # times say they are UTC
    assert report["started_at"] <= report["finished_at"]
    assert status["customStatus"] == {
        "phase": "done",
        "instances": 9,
        "to_stop": 4,
        "done": 9,
        "stopped": 4,
        "started": 0,
        "already_stopped": 1,
        "skipped": 4,
        "failed": 0,
        "timed_out": 0,
    }
    # The stand-in agrees: the stopped ones are Stopped, the others untouched and never sent a stop.
    assert fleet.arm.states() == {key: "Stopped" if key in TO_STOP else state for key, state in INITIAL.items()}
    posted = {r.path.rsplit("/", 2)[-2] for r in fleet.arm.requests("POST")}
    assert posted == {name for _, name in TO_STOP}


def test_a_run_limited_to_one_workspace_by_its_name_leaves_the_other_alone(fleet: Bench) -> None:
    report = _run(fleet, {"workspaces": ["WS-BETA"]})["report"]
    assert [w["workspace"] for w in report["workspaces"]] == [WS_B]
    assert {r["workspace"] for r in report["instances"]} == {WS_B}
    assert fleet.arm.states() == {
        key: "Stopped" if key in TO_STOP and key[0] == WS_B else state for key, state in INITIAL.items()
    }


def test_dry_run_in_the_body_stops_nothing_and_says_what_it_would_stop(fleet: Bench) -> None:
    report = _run(fleet, {"dry_run": True})["report"]
    assert report["dry_run"] is True
    results = _by_key(report)
    for key in TO_STOP:
        assert results[key]["decision"] == "would_stop"
        assert results[key]["outcome"] == "skipped"
        assert results[key]["reason"].startswith("dry run: would stop")
    assert report["totals"]["stopped"] == 0
    assert fleet.arm.states() == INITIAL
    assert fleet.arm.requests("POST") == []


def test_include_and_exclude_globs_narrow_the_run(fleet: Bench) -> None:
    report = _run(fleet, {"include": ["CI-*"], "exclude": ["*-grace", "ci-zz*"]})["report"]
    results = _by_key(report)
    assert results[(WS_B, "gpu-train")]["outcome"] == "skipped"
    assert "matches none of the include patterns ['CI-*']" in results[(WS_B, "gpu-train")]["reason"]
    assert results[(WS_B, "ci-grace")]["outcome"] == "skipped"
    assert "exclude pattern '*-grace'" in results[(WS_B, "ci-grace")]["reason"]
    stopped = {key for key, r in results.items() if r["outcome"] == "stopped"}
    assert stopped == {(WS_A, "ci-alice"), (WS_B, "ci-frank")}
    assert fleet.arm.states() == {key: "Stopped" if key in stopped else state for key, state in INITIAL.items()}


# --- requests refused -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ('{"dry_run": tru', "body", 'body: expected JSON such as {"dry_run": true}, got text that is not JSON'),
        ('["ws-alpha"]', "body", "body: expected a JSON object, got an array"),
        ('{"force": true}', "force", "force: unknown field; accepted fields: dry_run, workspaces, include"),
        ('{"dry_run": "yes"}', "dry_run", 'dry_run: expected true or false, got "yes"'),
        ('{"workspaces": "ws-alpha"}', "workspaces", 'workspaces: expected an array of strings, got "ws-alpha"'),
        ('{"include": ["ci-*", 7]}', "include[1]", "include[1]: expected a non-blank string, got 7"),
        ('{"exclude": [""]}', "exclude[0]", 'exclude[0]: expected a non-blank string, got ""'),
        ('{"workspaces": []}', "workspaces", "workspaces: expected at least one workspace"),
        ('{"workspaces": ["ws-alpha", "ws-nope"]}', "workspaces[1]", 'got "ws-nope"'),
    ],
)
def test_a_bad_body_is_refused_with_400_naming_the_field(bench: Bench, body: str, field: str, words: str) -> None:
    before = bench.host.request("GET", f"{DURABLE}/instances").json()
    response = bench.host.request("POST", "/api/shutdown", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()
    assert error["field"] == field
    assert words in error["error"]
    assert bench.host.request("GET", f"{DURABLE}/instances").json() == before  # nothing was started


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "not-the-key"}], ids=["no-key", "wrong-key"])
def test_starting_a_shutdown_needs_the_function_key(bench: Bench, headers: dict[str, str]) -> None:
    before = bench.host.request("GET", f"{DURABLE}/instances").json()
    response = bench.host.request("POST", "/api/shutdown", key=False, headers=headers, data=b"{}")
    assert response.status_code == 401
    assert "statusQueryGetUri" not in response.text
    assert bench.host.request("GET", f"{DURABLE}/instances").json() == before


# --- faults from Azure Resource Manager -----------------------------------------------------------------------------


def test_throttled_stop_with_retry_after_is_retried_and_the_instance_stopped(fleet: Bench) -> None:
    _fault_on_stop(fleet.arm, "ci-alice", status=429, headers={"Retry-After": "1"}, count=1)
    results = _by_key(_run(fleet)["report"])
    assert results[(WS_A, "ci-alice")]["outcome"] == "stopped"
    assert _stop_requests(fleet.arm, "ci-alice") == [429, 202]
    assert fleet.arm.state_of(WS_A, "ci-alice") == "Stopped"


def test_persistent_500_on_one_instance_fails_it_and_the_others_are_stopped(fleet: Bench) -> None:
    _fault_on_stop(fleet.arm, "ci-frank", status=500, count=None, message="Backend exploded for ci-frank")
    report = _run(fleet)["report"]
    results = _by_key(report)
    frank = results[(WS_B, "ci-frank")]
    assert frank["outcome"] == "failed"
    assert "500" in frank["error"] and "Backend exploded for ci-frank" in frank["error"]
    assert "\n" not in frank["error"]
    assert {key for key, r in results.items() if r["outcome"] == "stopped"} == TO_STOP - {(WS_B, "ci-frank")}
    assert report["totals"]["failed"] == 1
    assert fleet.arm.state_of(WS_B, "ci-frank") == "Running"
    assert len(_stop_requests(fleet.arm, "ci-frank")) > 1  # retried before giving up


def test_conflict_once_is_rechecked_later_and_stopped(fleet: Bench) -> None:
    _fault_on_stop(fleet.arm, "ci-alice", status=409, count=1, code="Conflict", message="Operation in progress")
    alice = _by_key(_run(fleet)["report"])[(WS_A, "ci-alice")]
    assert alice["outcome"] == "stopped", alice
    assert "re-checked" in alice["reason"]
    assert _stop_requests(fleet.arm, "ci-alice") == [409, 202]
    assert fleet.arm.state_of(WS_A, "ci-alice") == "Stopped"


def test_an_instance_deleted_meanwhile_is_skipped_as_not_found(fleet: Bench) -> None:
    fleet.arm.add_fault({"method": "POST", "path_regex": r"/computes/ci-alice/stop$", "status": 404, "count": None})
    report = _run(fleet)["report"]
    alice = _by_key(report)[(WS_A, "ci-alice")]
    assert alice["outcome"] == "skipped"
    assert "not found" in alice["reason"]
    assert alice["error"] is None
    assert report["totals"]["stopped"] == len(TO_STOP) - 1


def test_an_instance_deleted_while_stopping_is_skipped_as_not_found(fleet: Bench) -> None:
    fleet.arm.transition_seconds = 30  # long enough to delete it while it is Stopping
    status_url = _start(fleet.host)["statusQueryGetUri"]
    deadline = time.monotonic() + 30
    while not _stop_requests(fleet.arm, "ci-alice") and time.monotonic() < deadline:
        time.sleep(0.05)
    fleet.arm.remove(WS_A, "ci-alice")
    fleet.arm.transition_seconds = TRANSITION_SECONDS
    for key in TO_STOP - {(WS_A, "ci-alice")}:  # the others finish their stop at once
        fleet.arm.set_state(key[0], key[1], "Stopped")
    alice = _by_key(_finish(fleet, status_url)["report"])[(WS_A, "ci-alice")]
    assert alice["outcome"] == "skipped"
    assert "not found (deleted while stopping)" in alice["reason"]


def test_monitoring_lists_workspaces_instead_of_reading_each_instance(fleet: Bench) -> None:
    report = _run(fleet)["report"]
    assert report["totals"]["stopped"] == len(TO_STOP)
    # No per-instance read and no operation-status polling: only list pages and one POST per instance.
    assert fleet.arm.requests("GET", r"/computes/[^/]+$") == []
    assert fleet.arm.requests("GET", r"computeOperationsStatus") == []
    assert len(fleet.arm.requests("POST")) == len(TO_STOP)
    assert report["arm_requests"]["writes"] == len(TO_STOP)
    assert report["arm_requests"]["reads"] == len(fleet.arm.requests("GET"))


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "UserError", "StopCompute is not allowed when ComputeInstance disk is full."),
        (403, "AuthorizationFailed", "The client does not have authorization to perform action computes/stop"),
    ],
    ids=["disk-full", "no-role"],
)
def test_stop_refused_by_arm_fails_at_once_with_arms_message(
    fleet: Bench, status: int, code: str, message: str
) -> None:
    _fault_on_stop(fleet.arm, "ci-alice", status=status, code=code, message=message)
    report = _run(fleet)["report"]
    alice = _by_key(report)[(WS_A, "ci-alice")]
    assert alice["outcome"] == "failed"
    assert f"ARM answered {status}: {code}: {message}" in alice["error"]
    assert _stop_requests(fleet.arm, "ci-alice") == [status]  # a refusal is final: not retried
    assert fleet.arm.state_of(WS_A, "ci-alice") == "Running"
    assert report["totals"]["stopped"] == len(TO_STOP) - 1


def test_stop_operation_that_ends_failed_is_reported_failed(fleet: Bench) -> None:
    _fault_on_stop(fleet.arm, "ci-alice", operation_status="Failed", message="Could not deallocate the VM")
    report = _run(fleet)["report"]
    alice = _by_key(report)[(WS_A, "ci-alice")]
    assert alice["outcome"] == "failed"
    assert "stop operation failed" in alice["error"]
    assert fleet.arm.state_of(WS_A, "ci-alice") == "Running"
    assert report["totals"]["stopped"] == len(TO_STOP) - 1


def test_a_workspace_whose_listing_fails_is_reported_and_the_other_is_stopped(fleet: Bench) -> None:
    fleet.arm.add_fault(
        {"method": "GET", "path_regex": r"/ws-beta/computes/?$", "status": 503, "count": None, "message": "ARM down"}
    )
    report = _run(fleet)["report"]
    ws_b = next(w for w in report["workspaces"] if w["workspace"] == WS_B)
    assert ws_b["instances"] == 0
    assert "503" in ws_b["error"] and "ARM down" in ws_b["error"]
    assert report["totals"]["workspaces_failed"] == 1
    assert {(r["workspace"], r["name"]) for r in report["instances"] if r["outcome"] == "stopped"} == {
        key for key in TO_STOP if key[0] == WS_A
    }
    assert fleet.arm.states() == {
        key: "Stopped" if key in TO_STOP and key[0] == WS_A else state for key, state in INITIAL.items()
    }
    # Retried on durable timers before it was given up.
    assert len(fleet.arm.requests("GET", r"/ws-beta/computes/?$")) > 2


def test_every_workspace_failing_fails_the_orchestration_with_a_clear_message(fleet: Bench) -> None:
    fleet.arm.add_fault(
        {
            "method": "GET",
            "path_regex": r"/computes/?$",
            "status": 403,
            "count": None,
            "message": "The client does not have authorization to perform action computes/read",
        }
    )
    status = _run(fleet, expect="Failed")
    message = json.dumps(status["output"])
    assert "listing failed in every workspace (2)" in message
    assert WS_A in message and WS_B in message
    assert "does not have authorization" in message
    assert fleet.arm.requests("POST") == []
    # The report of the failed run is still saved, for the person who reads the reports container.
    created = datetime.fromisoformat(status["createdTime"].replace("Z", "+00:00"))
    saved = _saved_report(fleet.host, f"shutdown/{created:%Y/%m/%d}/{status['instanceId']}.json")
    assert saved["totals"]["workspaces_failed"] == 2
    assert all("does not have authorization" in w["error"] for w in saved["workspaces"])


def test_a_stop_that_never_completes_times_out_and_progress_shows_meanwhile(fleet: Bench) -> None:
    fleet.arm.transition_seconds = 600  # the stop is accepted but the instance stays Stopping
    status_url = _start(fleet.host)["statusQueryGetUri"]
    progress: dict[str, Any] | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = requests.get(status_url, timeout=10)
        custom = response.json().get("customStatus") or {}
        if response.status_code == 202 and custom.get("phase") == "stopping":
            progress = custom
            break
        assert response.json()["runtimeStatus"] not in TERMINAL
        time.sleep(0.1)
    assert progress == {
        "phase": "stopping",
        "instances": 9,
        "to_stop": 4,
        "done": 5,
        "stopped": 0,
        "started": 0,
        "already_stopped": 1,
        "skipped": 4,
        "failed": 0,
        "timed_out": 0,
    }
    report = _finish(fleet, status_url)["report"]
    results = _by_key(report)
    for key in TO_STOP:
        assert results[key]["outcome"] == "timed_out"
        assert f"not Stopped within {STOP_TIMEOUT_SECONDS} s (last seen Stopping)" in results[key]["error"]
        assert results[key]["seconds"] >= STOP_TIMEOUT_SECONDS
    assert report["totals"]["timed_out"] == len(TO_STOP)


def test_no_bearer_token_or_identity_secret_in_statuses_or_the_host_log(fleet: Bench) -> None:
    _fault_on_stop(fleet.arm, "ci-alice", status=400)  # errors are reported too: they must be clean
    _run(fleet)
    everything = fleet.host.request("GET", f"{DURABLE}/instances?showInput=true")  # the stop monitors as well
    assert everything.status_code == 200
    assert len(everything.json()) > 1
    log = fleet.host.log_text()
    assert "stop of ci-alice" in log
    _secrets_absent(fleet, everything.text, log)
    assert fleet.identity.requests > 0  # tokens were issued and used: there was something to leak


# --- the nightly timer ----------------------------------------------------------------------------------------------


def test_the_timer_starts_a_run_by_itself_with_the_configured_dry_run(timer_bench: Bench) -> None:
    host, arm = timer_bench.host, timer_bench.arm
    listing = f"{host.base_url}{DURABLE}/instances?code={host.key}"
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        answer = requests.get(listing, timeout=10)
        assert answer.status_code == 200, answer.text
        found = [i for i in answer.json() if i["name"] == "shutdown_orchestrator"]
        time.sleep(0.2)
    assert found, f"no run started by the timer\n{host.log_text()[-3000:]}"
    status = _finish(timer_bench, f"{host.base_url}{DURABLE}/instances/{found[0]['instanceId']}?code={host.key}")
    report = status["report"]
    assert (report["trigger"], report["dry_run"]) == ("timer", True)
    would_stop = {(r["workspace"], r["name"]) for r in report["instances"] if r["decision"] == "would_stop"}
    assert would_stop == TO_STOP
    assert arm.requests("POST") == []
    assert arm.states() == INITIAL
    _secrets_absent(timer_bench, host.log_text())
    # The setting is the default of an HTTP start too.
    assert _run(timer_bench)["output"]["dry_run"] is True


def test_progress_counts_what_the_workspaces_finished_while_the_run_stops(fleet: Bench) -> None:
    """Issue 19: the dashboard's `done` stayed at its planned value while a run stopped. ws-beta's stops end while
    ws-alpha's one stop is slow to answer: the page counts what each workspace finished (8 of 9), though the
    run's own status still holds the plan's counts (5) while it waits on its workspaces."""
    _fault_on_stop(fleet.arm, "ci-alice", delay_seconds=8)
    urls = _start(fleet.host)
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = fleet.host.request("GET", "/api/dashboard").text
        seen += [line for line in page.split("<p class=note>") if "Running now" in line]
        if any("8 of 9 instances done" in line for line in seen):
            break
        time.sleep(0.2)
    assert any("8 of 9 instances done" in line for line in seen), seen[-3:]
    own = requests.get(urls["statusQueryGetUri"], timeout=10).json()["customStatus"]
    assert (own["phase"], own["done"]) == ("stopping", 5)
    totals = _finish(fleet, urls["statusQueryGetUri"])["report"]["totals"]
    # ci-alice's POST answered after its stop timeout (4 s): reported so, the three others stopped.
    assert (totals["stopped"], totals["timed_out"]) == (len(TO_STOP) - 1, 1)


def test_every_orchestration_of_a_run_is_addressable_and_its_history_holds_no_instance_list(fleet: Bench) -> None:
    """The run's children have ids derived from its own (`{run}:plan:`, `{run}:run:`, `{run}:ws:`); their
    histories (Durable API, showHistoryOutput) carry counts and blob names, never the fleet's instances."""
    status = _run(fleet)
    run_id = status["instanceId"]
    listed = fleet.host.request("GET", f"{DURABLE}/instances?instanceIdPrefix={run_id}").json()
    ids = sorted(i["instanceId"] for i in listed)
    assert [i.split(":")[1] for i in ids[1:]] == ["plan", "run", "ws", "ws"]  # one subscription, two workspaces
    for instance_id in ids:
        answer = fleet.host.request(
            "GET", f"{DURABLE}/instances/{instance_id}?showHistory=true&showHistoryOutput=true"
        ).json()
        events = answer["historyEvents"]
        assert any("Result" in e or "Input" in e for e in events), events[:3]
        text = json.dumps(events)
        assert "ci-grace" not in text and "ci-heidi" not in text, instance_id  # no instance names in any history
