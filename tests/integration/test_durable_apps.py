"""devhost runs a Durable app written the way Microsoft's samples are (tests/durable_apps/samples) as Azure does.

Each expectation names its source: the Durable extension's e2e tests (test/e2e/Tests/Tests/*.cs, with the Python
strings of test/e2e/Tests/Localizers/PythonTestLanguageLocalizer.cs), its HttpApiHandler and DurableTaskExtension,
the Python worker's loader, the timer extension, and Core Tools' log output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = pytest.mark.integration

SAMPLES = APP_ROOT / "tests" / "durable_apps" / "samples"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("durable-samples")
    # The yearly timer last ran on 1 January last year and devhost was down this 1 January: that run is past due.
    timers = data / "state" / "timers"
    timers.mkdir(parents=True)
    last = _new_year(-1).isoformat()
    recorded = {"Last": last, "Next": _new_year(0).isoformat(), "LastUpdated": last}
    (timers / "new_year.json").write_text(json.dumps(recorded))
    settings = {"TIMER_RUNS_FILE": str(data / "timer-runs.jsonl")}
    host = start_devhost(data, settings, script_root=SAMPLES, azurite=False, workers=1)
    yield host
    host.stop()


def _new_year(offset: int) -> datetime:
    return datetime(datetime.now(UTC).year + offset, 1, 1, tzinfo=UTC)


def _run(host: RunningHost, name: str, body: Any = None, version: str | None = None) -> dict[str, Any]:
    """Starts `name` through the app's samples-v2 starter and follows its statusQueryGetUri to the end."""
    params = {"version": version} if version is not None else None
    data = json.dumps(body) if body is not None else b""
    response = host.request("POST", f"/api/orchestrators/{name}", data=data, params=params)
    assert response.status_code == 202, response.text
    return host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=60)


def _devhost(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "devhost", "--no-azurite", "--port", "0", *args]
    return subprocess.run(command, cwd=APP_ROOT, capture_output=True, text=True, timeout=60, check=False)


# --- loading the app (the Python worker's loader.index_function_app) -----------------------------------------------


def test_an_app_named_myapp_with_a_blueprint_is_indexed_and_named_orchestrations_run(samples: RunningHost) -> None:
    status = _run(samples, "HelloCities")
    # HelloCitiesTest.cs: Completed, the output holds "Hello Tokyo!"; the status names the registered orchestration.
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert status["name"] == "HelloCities"


def test_a_v1_app_or_a_wrong_script_root_stops_devhost_naming_the_problem(tmp_path: Path) -> None:
    (tmp_path / "v1" / "HttpStart").mkdir(parents=True)
    (tmp_path / "v1" / "HttpStart" / "function.json").write_text('{"bindings": []}')
    v1 = _devhost("--script-root", str(tmp_path / "v1"))
    assert v1.returncode != 0
    assert "holds a v1 programming model app (HttpStart/function.json) and no function_app.py" in v1.stderr
    missing = _devhost("--script-root", str(tmp_path / "typo"))
    assert missing.returncode != 0
    assert f"--script-root {tmp_path / 'typo'} does not exist" in missing.stderr
    assert "Functions:" not in missing.stdout  # nothing was served, least of all the repository's own app


# --- registered names (the extension's binding providers; DurableTaskExtension.ThrowIfFunctionDoesNotExist) ----------


def test_the_python_function_name_is_not_a_registered_name(samples: RunningHost) -> None:
    # HttpApiHandler.HandleStartOrchestratorRequestAsync -> StartNewAsync -> ThrowIfFunctionDoesNotExist: 400.
    refused = samples.request("POST", "/runtime/webhooks/durabletask/orchestrators/hello_cities")
    assert refused.status_code == 400
    assert (
        "The function 'hello_cities' doesn't exist, is disabled, or is not an orchestrator function"
        in (refused.json()["ExceptionMessage"])
    )
    # Case does not matter to the extension (FunctionName).
    assert samples.request("POST", "/runtime/webhooks/durabletask/orchestrators/hellocities").status_code == 202
    status = _run(samples, "CallsTheFunctionName")
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == (
        "Orchestrator function 'CallsTheFunctionName' failed: The function 'say_hello' doesn't exist, is disabled, "
        "or is not an activity function. Additional info: The following are the known activity functions: "
        "'SayHello', 'raise_exception'."
    )


# --- large outputs (LargeOutputOrchestratorTests.cs: 4608 KB "exceeds the default 4 MB") ---------------------------


def test_a_6_mib_output_completes_and_reads_back_whole(samples: RunningHost) -> None:
    status = _run(samples, "LargeOutputOrchestrator", 6 * 1024)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"][0] == "Hello Tokyo!"
    assert status["output"][1] == "A" * (6 * MIB)


def test_an_output_over_devhosts_limit_fails_the_instance_saying_how_large_it_was(tmp_path: Path) -> None:
    host = start_devhost(tmp_path, {"DEVHOST_GRPC_MAX_MESSAGE_MB": "4"}, script_root=SAMPLES, azurite=False, workers=1)
    try:
        status = _run(host, "LargeOutputOrchestrator", 5 * 1024)
    finally:
        host.stop()
    assert status["runtimeStatus"] == "Failed"
    size = len(json.dumps(["Hello Tokyo!", "A" * (5 * MIB)]))
    assert status["output"] == (
        f"Orchestrator function 'LargeOutputOrchestrator' failed: output of {size} bytes exceeds devhost's gRPC "
        f"message limit of {4 * MIB} bytes (DEVHOST_GRPC_MAX_MESSAGE_MB); keep large data in blob storage and "
        "return a reference to it, or raise DEVHOST_GRPC_MAX_MESSAGE_MB"
    )


# --- failures (ErrorHandlingTests.cs with PythonTestLanguageLocalizer's strings) -----------------------------------


def test_an_uncaught_activity_failure_fails_the_orchestration_and_a_caught_one_does_not(samples: RunningHost) -> None:
    failed = _run(samples, "RethrowActivityException")
    assert failed["runtimeStatus"] == "Failed"
    assert failed["output"].startswith(
        "Orchestrator function 'RethrowActivityException' failed: Activity function 'raise_exception' failed: "
    )
    assert "This activity failed" in failed["output"]
    caught = _run(samples, "CatchActivityException")
    assert caught["runtimeStatus"] == "Completed"
    assert caught["output"].startswith("Caught exception: Activity function 'raise_exception' failed: ")


def test_each_execution_is_logged_as_core_tools_logs_it_with_the_failure(samples: RunningHost) -> None:
    _run(samples, "RethrowActivityException")
    log = samples.log_text()
    assert "Executing 'Functions.rethrow_activity_exception' (Reason='(null)', Id=" in log
    assert "Executed 'Functions.say_hello' (Succeeded, Id=" in log
    failure = log[log.index("Executed 'Functions.raise_exception' (Failed, Id=") :]
    assert "Result: Failure\nException: InvalidOperationException: This activity failed\nStack: " in failure
    assert "Function 'RethrowActivityException (Orchestrator)' failed with an error. Reason: " in log


# --- versioning (VersioningTests.cs; host.json defaultVersion 2.0, CurrentOrOlder, Fail, as its app's) -------------


@pytest.mark.parametrize(("version", "expected"), [(None, "2.0"), ("", ""), ("1.0", "1.0"), ("2.0", "2.0")])
def test_start_new_version_or_the_default_version_reaches_context_version(
    samples: RunningHost, version: str | None, expected: str
) -> None:
    status = _run(samples, "OrchestrationVersion", version=version)
    assert status["output"] == f"Version: '{expected}'"


@pytest.mark.parametrize(("sub_version", "expected"), [(None, "2.0"), ("1.0", "1.0")])
def test_a_sub_orchestration_gets_its_version_or_the_default_one(
    samples: RunningHost, sub_version: str | None, expected: str
) -> None:
    status = _run(samples, "OrchestrationSubVersion", sub_version)
    assert status["output"] == f"Parent Version: '2.0' | Sub Version: '{expected}'"


def test_a_newer_version_than_the_app_fails_with_version_failure_strategy_fail(samples: RunningHost) -> None:
    status = _run(samples, "OrchestrationVersion", version="3.0")
    assert status["runtimeStatus"] == "Failed"
    assert "The orchestration version '3.0' is greater than the worker version '2.0'." in status["output"]


# --- entities (df 1.x's entity protocol; HttpApiHandler's entity routes; ErrorHandlingTests.cs) --------------------


def test_signals_and_calls_reach_the_entity_in_order_and_calls_return_its_results(samples: RunningHost) -> None:
    # signal add 5, call add 1 -> 6, signal add 10, call get -> 16: one queue per entity, in the order sent.
    status = _run(samples, "CounterOrchestration", "ordered")
    assert (status["runtimeStatus"], status["output"]) == ("Completed", [6, 16])


def test_the_client_signals_and_reads_entities_as_on_azure(samples: RunningHost) -> None:
    assert samples.request("POST", "/api/counters/client?op=add", data=b"3").status_code == 202
    assert samples.request("POST", "/api/counters/client?op=add", data=b"4").status_code == 202
    deadline = time.monotonic() + 20
    read: dict[str, Any] = {}
    while time.monotonic() < deadline and read.get("state") != 7:
        read = samples.request("GET", "/api/counters/client").json()
        time.sleep(0.1)
    assert read == {"exists": True, "state": 7}  # read_entity_state: 200 with the state
    assert samples.request("GET", "/api/counters/never").json() == {"exists": False, "state": None}  # 404
    webhook = "/runtime/webhooks/durabletask/entities"
    answer = samples.request("GET", f"{webhook}/Counter/client")
    assert (answer.status_code, answer.json()) == (200, 7)
    assert samples.request("GET", f"{webhook}/Counter/never").status_code == 404
    curl = samples.request(
        "POST", f"{webhook}/Counter/client?op=add", data=b"10", headers={"Content-Type": "application/json"}
    )
    assert curl.status_code == 202
    unknown = samples.request("POST", f"{webhook}/Nope/k?op=add")
    assert unknown.status_code == 400
    assert unknown.json()["Message"] == (
        "The function 'Nope' doesn't exist, is disabled, or is not an entity function. Additional info: "
        "The following are the known entity functions: 'Counter'."
    )


def test_an_entity_failure_reaches_the_calling_orchestration(samples: RunningHost) -> None:
    thrown = _run(samples, "ThrowEntityOrchestration")
    assert thrown["runtimeStatus"] == "Failed"
    assert thrown["output"].startswith("Orchestrator function 'ThrowEntityOrchestration' failed:")
    caught = _run(samples, "CatchEntityOrchestration")
    assert caught["output"] == "This entity failed\r\nMore information about the failure"


# --- timers (the timer extension's ScheduleMonitor: useMonitor unset means true) -----------------------------------


def test_a_missed_occurrence_runs_once_at_start_as_past_due(samples: RunningHost) -> None:
    runs_file = Path(samples.settings["TIMER_RUNS_FILE"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not runs_file.exists():
        time.sleep(0.1)
    [run] = [json.loads(line) for line in runs_file.read_text().splitlines()]
    assert run["past_due"] is True
    assert run["status"]["Next"] == _new_year(0).isoformat()
    assert "Function 'new_year' is past due on startup. Executing now." in samples.log_text()
    recorded = json.loads((samples.data_dir / "state" / "timers" / "new_year.json").read_text())
    assert recorded["Next"] == _new_year(1).isoformat()
