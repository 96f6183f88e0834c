"""One uploaded file or one shutdown run is one trace, from the trigger to the last activity, across processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devhost_runner import RunningHost, start_devhost
from tests.helpers.scoring import wait_for_run
from tests.helpers.storage import download, upload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def traced_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("traced-devhost")
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        "DEVHOST_SPAN_FILE": str(data / "spans.jsonl"),
        # devhost's embedded ARM and managed-identity stand-ins, serving the sample fleet.
        "DEVHOST_ARM_FLEET": "devhost/standins/fleet.sample.json",
        "DEVHOST_ARM_TRANSITION_SECONDS": "0.5",
        "AML_WORKSPACES": "6b1d4c1e-3f2a-4c55-9e21-5a0d7c3e9f10/rg-ml-dev/ws-research,"
        "6b1d4c1e-3f2a-4c55-9e21-5a0d7c3e9f10/rg-ml-prod/ws-prod",
        "SHUTDOWN_POLL_SECONDS": "1",
        "AML_POLLING_INTERVAL_SECONDS": "0.2",
        "DEVHOST_EVENTGRID_SUBSCRIPTIONS": json.dumps(
            [
                {
                    "function": "on_blob_created",
                    "subjectBeginsWith": "/blobServices/default/containers/incoming/",
                    "subjectEndsWith": ".csv",
                }
            ]
        ),
    }
    host = start_devhost(data, settings, workers=2)
    yield host
    host.stop()


def _spans(host: RunningHost) -> list[dict[str, Any]]:
    path = Path(host.settings["DEVHOST_SPAN_FILE"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _spans_once(host: RunningHost, trace_id: str | None, last: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The spans, once the span named `last` (ended after the run's visible result, in a worker) is exported."""
    deadline = time.monotonic() + timeout
    while True:
        spans = _spans(host)
        if any(s["name"] == last and (trace_id is None or s["trace_id"] == trace_id) for s in spans):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"no {last} span within {timeout} s: {[s['name'] for s in spans]}")
        time.sleep(0.1)


def test_uploaded_file_is_one_trace_from_trigger_to_last_activity(traced_host: RunningHost) -> None:
    body = "id,height\n" + "".join(f"{i},{140 + i % 60}\n" for i in range(2000))
    upload(traced_host, "traced/one.csv", body.encode())
    run = wait_for_run(traced_host, "traced/one.csv")
    assert run["runtimeStatus"] == "Completed", run
    assert download(traced_host, "predictions", "traced/one.csv") is not None, traced_host.log_text()[-3000:]
    spans = _spans_once(traced_host, None, "commit_predictions")
    trigger = [
        s for s in spans if s["name"] == "on_blob_created" and "traced/one.csv" in s["attributes"].get("subject", "")
    ]
    assert len(trigger) == 1, spans
    trace_id = trigger[0]["trace_id"]
    activities = [
        s
        for s in spans
        if s["name"] in {"plan_scoring_chunks", "score_chunk", "commit_predictions"} and s["trace_id"] == trace_id
    ]
    assert {s["name"] for s in activities} == {"plan_scoring_chunks", "score_chunk", "commit_predictions"}
    # Every activity span is a child of the trigger's span, though they ran in worker processes.
    assert all(s["parent_span_id"] == trigger[0]["span_id"] for s in activities)
    assert {s["pid"] for s in activities} != {trigger[0]["pid"]}
    # The trigger continued the trace context the host invoked it with (a remote parent).
    assert trigger[0]["parent_span_id"]
    assert all(
        s["attributes"].get("blob") == "incoming/traced/one.csv"
        for s in activities
        if s["name"] != "plan_scoring_chunks"
    )
    # Log records carry the trace id: the trigger's line and the workers' lines about this blob.
    lines = [line for line in traced_host.log_text().splitlines() if "traced/one.csv" in line]
    assert any(f"[trace {trace_id}]" in line and "triggers.scoring" in line for line in lines)
    assert any(f"[trace {trace_id}]" in line and "worker" in line for line in lines)


def test_http_started_shutdown_is_one_trace_continuing_the_callers(traced_host: RunningHost) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = traced_host.request(
        "POST", "/api/shutdown", data=b"{}", headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
    )
    assert response.status_code == 202
    status = traced_host.wait_for_completion(response.json()["statusQueryGetUri"], timeout=60)
    assert status["runtimeStatus"] == "Completed", status
    spans = [
        s for s in _spans_once(traced_host, caller_trace, "assemble_compute_report") if s["trace_id"] == caller_trace
    ]
    starters = [s for s in spans if s["name"] == "start_shutdown"]
    assert len(starters) == 1
    activities = [
        s
        for s in spans
        if s["name"]
        in {
            "plan_compute_workspace",
            "step_compute_workspace",
            "stop_compute_instance",
            "finish_compute_workspace",
            "assemble_compute_report",
        }
    ]
    # Both workspaces planned, every instance the report says was stopped had its stop span, the report saved.
    names = [s["name"] for s in activities]
    assert names.count("plan_compute_workspace") == names.count("finish_compute_workspace") == 2
    report = json.loads(download(traced_host, "reports", status["output"]["report_blob"].split("/", 1)[1]) or b"{}")
    stopped = {i["name"] for i in report["instances"] if i["outcome"] == "stopped"}
    assert (
        stopped and {s["attributes"]["compute"] for s in activities if s["name"] == "stop_compute_instance"} == stopped
    )
    assert names.count("assemble_compute_report") == 1
    assert all(s["parent_span_id"] == starters[0]["span_id"] for s in activities)
    # Log lines of the run carry the caller's trace id (what App Insights shows as operation_Id).
    assert any(
        f"[trace {caller_trace}]" in line and "shutdown started" in line for line in traced_host.log_text().splitlines()
    )
