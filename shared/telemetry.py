"""Process-wide telemetry: picks the exporter once (Application Insights, OTLP or none), continues the W3C
trace context of each invocation, and puts the trace id and run ids on every log record.

Only the light OpenTelemetry API is imported here; the SDK and azure-monitor are imported when configured.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_EXPORTER_OTLP_ENDPOINT

logger = logging.getLogger(__name__)

TRACER_NAME = "aml-ops-functions"
AttributeValue = str | bool | int | float

_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
# Ids bound by invocation_span (instance_id, blob, compute, ...) that log records made inside it carry.
_log_ids: ContextVar[Mapping[str, AttributeValue]] = ContextVar("telemetry_log_ids", default=_EMPTY)

_lock = threading.Lock()


class _State:
    exporter: str | None = None
    factory_installed = False


def configure_telemetry(env: Mapping[str, str] | None = None, *, span_processor: Any = None) -> str:
    """Configure exporting once per process and return which exporter is active: azure-monitor, otlp or none.

    Later calls change nothing except adding `span_processor` (an OpenTelemetry SDK SpanProcessor, e.g. a
    SimpleSpanProcessor over an InMemorySpanExporter in tests) to the process's tracer provider.
    """
    with _lock:
        _install_log_record_factory()
        if _State.exporter is None:
            _State.exporter = _configure_exporter(env, span_processor)
            if _State.exporter == "azure-monitor":
                span_processor = None  # handed to configure_azure_monitor already
        if span_processor is not None:
            _sdk_tracer_provider().add_span_processor(span_processor)
        return _State.exporter


def _configure_exporter(env: Mapping[str, str] | None, span_processor: Any) -> str:
    connection_string = APPLICATIONINSIGHTS_CONNECTION_STRING.get(env)
    if connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        options: dict[str, Any] = {}
        if "OTEL_TRACES_SAMPLER" not in os.environ:
            # The distro's default rate-limited sampler decides per process and moment, so a trigger and its
            # activities (other processes, later) could be sampled apart. A fixed ratio decides by trace id.
            options["sampling_ratio"] = 1.0
        # Passed explicitly: the injected env (or a resolved Key Vault reference) may not be in os.environ.
        configure_azure_monitor(
            connection_string=connection_string,
            span_processors=[span_processor] if span_processor is not None else [],
            **options,
        )
        logger.info("telemetry exported to Application Insights")
        return "azure-monitor"
    endpoint = OTEL_EXPORTER_OTLP_ENDPOINT.get(env)
    if endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError:
            logger.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT=%s is set but opentelemetry-exporter-otlp-proto-http is not "
                "installed; no telemetry is exported",
                endpoint,
            )
            return "none"
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        _sdk_tracer_provider().add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        logger.info("telemetry exported over OTLP to %s", endpoint)
        return "otlp"
    # Without an SDK provider the API's no-op tracer still carries incoming trace ids through, for free.
    return "none"


def _sdk_tracer_provider() -> Any:
    current = trace.get_tracer_provider()
    if hasattr(current, "add_span_processor"):
        return current
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        # Someone else installed a non-SDK provider first; OpenTelemetry allows only one per process.
        logger.warning(
            "a tracer provider of type %s is already installed; spans may not be recorded",
            type(trace.get_tracer_provider()).__name__,
        )
    return provider


@contextmanager
def invocation_span(
    name: str,
    traceparent: str | None = None,
    tracestate: str | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span continuing the W3C trace context of an invocation (or the current one when none is given).

    `attributes` go on the span and on every log record made inside it; None values are left out.
    """
    if _State.exporter is None:
        configure_telemetry()
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    parent = _PROPAGATOR.extract(carrier) if carrier.get("traceparent") else None
    ids = {k: v for k, v in (attributes or {}).items() if v is not None}
    token = _log_ids.set(MappingProxyType({**_log_ids.get(), **ids}))
    try:
        tracer = trace.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=ids) as span:
            yield span
    finally:
        _log_ids.reset(token)


@contextmanager
def carrier_span(
    name: str,
    carrier: Mapping[str, Any] | None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """invocation_span from a carrier made by current_trace_carrier (e.g. in an orchestration input)."""
    carrier = carrier or {}
    with invocation_span(
        name,
        _str_or_none(carrier.get("traceparent")),
        _str_or_none(carrier.get("tracestate")),
        attributes,
        kind=kind,
    ) as span:
        yield span


@contextmanager
def trigger_span(
    name: str, invocation_context: Any, attributes: Mapping[str, AttributeValue | None] | None = None
) -> Iterator[Span]:
    """The span of one trigger invocation, a child of the trace context the host passed with it."""
    carrier = trace_carrier_of(invocation_context)
    with invocation_span(
        name, carrier.get("traceparent"), carrier.get("tracestate"), attributes, kind=SpanKind.SERVER
    ) as span:
        yield span


def current_trace_carrier() -> dict[str, str]:
    """The current trace context as {"traceparent", "tracestate"} (empty when there is none) for a payload."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def trace_carrier_of(invocation_context: Any) -> dict[str, str]:
    """The W3C trace context the host gave an invocation (`func.Context.trace_context`), as a carrier."""
    trace_context = getattr(invocation_context, "trace_context", None)
    carrier = {
        "traceparent": _str_or_none(getattr(trace_context, "trace_parent", None)),
        "tracestate": _str_or_none(getattr(trace_context, "trace_state", None)),
    }
    return {k: v for k, v in carrier.items() if v}


def current_trace_id() -> str:
    """The current trace id as 32 hex digits (App Insights' operation_Id), or "" outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# C0 controls (line breaks included), DEL, C1 controls and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TRACEBACK_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # a traceback keeps its lines


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with control characters written as escapes (`\\x00`, `\\x1b`, `\\n`-as-`\\x0a`): one log line."""
    return _CONTROL.sub(_escape, text)


def _escaped_arg(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value  # numbers carry no control characters; %d and %.1f must still get a number
    text = value if isinstance(value, str) else str(value)
    return escape_controls(text) if _CONTROL.search(text) else value


def escape_record(record: logging.LogRecord) -> None:
    """Escape control characters a log record would print: from blob names, event fields, error messages.

    User-provided values (a blob name with a NUL or a line break, an event subject with ESC sequences) reach
    log lines through %-arguments and exception messages; escaped, they can neither garble nor forge a line.
    """
    if record.msg is not None and not isinstance(record.msg, str):
        record.msg = _escaped_arg(record.msg)  # log.error(err): the message is an object, not a format string
    if isinstance(record.args, tuple):
        record.args = tuple(_escaped_arg(a) for a in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {k: _escaped_arg(v) for k, v in record.args.items()}
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and _CONTROL.search(str(error)) and record.exc_info:
        # Handlers print exc_text when it is set: the same traceback, its message escaped.
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = _TRACEBACK_CONTROL.sub(_escape, text.replace(str(error), escape_controls(str(error))))


def _install_log_record_factory() -> None:
    """Chain a record factory (once): every record gets trace_id, span_id and the bound ids, and its
    user-provided values escaped (escape_record)."""
    if _State.factory_installed:
        return
    _State.factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        span_context = trace.get_current_span().get_span_context()
        valid = span_context.is_valid
        record.__dict__["trace_id"] = format(span_context.trace_id, "032x") if valid else ""
        record.__dict__["span_id"] = format(span_context.span_id, "016x") if valid else ""
        for key, value in _log_ids.get().items():
            # Never clobber LogRecord's own attributes (name, msg, ...). Note: `extra=` naming a bound id
            # raises KeyError in Logger.makeRecord, so code inside invocation_span must not repeat them.
            record.__dict__.setdefault(key, value)
        escape_record(record)
        return record

    logging.setLogRecordFactory(factory)
