"""Trace context continuation, carriers and log correlation, recorded with the OpenTelemetry SDK in memory."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.settings import APP_ROOT
from shared.telemetry import (
    carrier_span,
    configure_telemetry,
    current_trace_carrier,
    current_trace_id,
    invocation_span,
    trace_carrier_of,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _configured() -> None:
    # One tracer provider per process (OpenTelemetry's rule), so one exporter for the module.
    assert configure_telemetry({}, span_processor=SimpleSpanProcessor(_EXPORTER)) == "none"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_invocation_span_continues_the_given_traceparent(spans: InMemorySpanExporter):
    with invocation_span("http_start_shutdown", TRACEPARENT, "congo=t61rcWkgMzE", {"instance_id": "abc"}):
        assert current_trace_id() == TRACE_ID

    span = by_name(spans)["http_start_shutdown"]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.context.trace_state.get("congo") == "t61rcWkgMzE"
    assert span.attributes is not None and span.attributes["instance_id"] == "abc"


def test_carrier_round_trip_through_a_payload_keeps_the_trace(spans: InMemorySpanExporter):
    with invocation_span("trigger", TRACEPARENT):
        orchestration_input: dict[str, Any] = {"blob": "incoming/a.csv", "trace": current_trace_carrier()}

    # An activity runs elsewhere (another thread, no ambient context) with only the payload.
    def activity() -> None:
        with carrier_span("score_chunk", orchestration_input["trace"], {"blob": "incoming/a.csv"}):
            pass

    worker = threading.Thread(target=activity)
    worker.start()
    worker.join()

    recorded = by_name(spans)
    trigger, child = recorded["trigger"], recorded["score_chunk"]
    assert set(orchestration_input["trace"]) == {"traceparent"}
    assert child.context.trace_id == trigger.context.trace_id == int(TRACE_ID, 16)
    assert child.parent is not None and child.parent.span_id == trigger.context.span_id


def test_log_records_carry_trace_id_and_bound_ids(caplog: pytest.LogCaptureFixture):
    log = logging.getLogger("tests.telemetry")
    caplog.set_level(logging.INFO)
    with invocation_span(
        "stop_compute_instance", TRACEPARENT, attributes={"instance_id": "run-1", "compute": "ci-alice"}
    ):
        log.info("stopping %s", "ci-alice")
    log.info("after the invocation")

    inside, after = caplog.records[-2], caplog.records[-1]
    assert inside.__dict__["trace_id"] == TRACE_ID
    assert len(inside.__dict__["span_id"]) == 16
    assert inside.__dict__["instance_id"] == "run-1" and inside.__dict__["compute"] == "ci-alice"
    assert after.__dict__["trace_id"] == "" and "compute" not in after.__dict__


@pytest.mark.parametrize("traceparent", [None, "", "not-a-traceparent", f"00-{'0' * 32}-{PARENT_SPAN_ID}-01"])
def test_missing_or_invalid_traceparent_starts_a_new_trace(spans: InMemorySpanExporter, traceparent: str | None):
    with invocation_span("timer_shutdown", traceparent):
        pass
    span = by_name(spans)["timer_shutdown"]
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE_ID


def test_exception_marks_the_span_failed_and_propagates(spans: InMemorySpanExporter):
    with pytest.raises(RuntimeError), invocation_span("commit_predictions", TRACEPARENT):
        raise RuntimeError("disk full")
    span = by_name(spans)["commit_predictions"]
    assert not span.status.is_ok
    assert [event.name for event in span.events] == ["exception"]


def test_trace_carrier_of_reads_the_functions_invocation_context():
    context = SimpleNamespace(trace_context=SimpleNamespace(trace_parent=TRACEPARENT, trace_state=""))
    assert trace_carrier_of(context) == {"traceparent": TRACEPARENT}
    assert trace_carrier_of(SimpleNamespace()) == {}


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, timeout=60, check=True
    )


def test_importing_telemetry_loads_neither_the_sdk_nor_azure_monitor():
    result = run_python(
        "import sys, shared.telemetry; "
        "print([m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'azure.monitor'))])"
    )
    assert result.stdout.strip() == "[]"


def test_otlp_endpoint_without_exporter_package_warns_and_exports_nothing():
    result = run_python(
        "from shared.telemetry import configure_telemetry; "
        "print(configure_telemetry({'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4318'}))"
    )
    assert result.stdout.strip() == "none"
    assert "opentelemetry-exporter-otlp-proto-http is not installed" in result.stderr


def test_app_insights_connection_string_exports_every_span_of_a_continued_trace():
    # Ingestion points at a closed loopback port: nothing leaves the machine, the pipeline is the real one.
    result = run_python(
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from shared.telemetry import configure_telemetry, invocation_span\n"
        "exporter = InMemorySpanExporter()\n"
        "cs = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/'\n"
        "print(configure_telemetry({'APPLICATIONINSIGHTS_CONNECTION_STRING': cs},"
        " span_processor=SimpleSpanProcessor(exporter)))\n"
        f"for _ in range(20):\n    with invocation_span('activity', {TRACEPARENT!r}): pass\n"
        "print(len(exporter.get_finished_spans()))\n"
    )
    assert result.stdout.split() == ["azure-monitor", "20"]
