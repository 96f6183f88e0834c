"""One uploaded file or one shutdown run is one trace, from the trigger to the last activity, across processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devhost_runner import RunningHost, start_devhost

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def traced_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("traced-devhost")
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
        "DEVHOST_SPAN_FILE": str(data / "spans.jsonl"),
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


def test_uploaded_file_is_one_trace_from_trigger_to_last_activity(traced_host: RunningHost) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(traced_host.storage_connection_string)
    body = "id,height\n" + "".join(f"{i},{140 + i % 60}\n" for i in range(2000))
    service.get_blob_client("incoming", "traced/one.csv").upload_blob(body.encode(), overwrite=True)
    predictions = service.get_blob_client("predictions", "traced/one.csv")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not predictions.exists():
        time.sleep(0.2)
    assert predictions.exists(), traced_host.log_text()[-3000:]
    time.sleep(0.5)  # the last activity's span is exported when it ends, just after the commit

    spans = _spans(traced_host)
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
