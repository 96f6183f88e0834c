"""Local span export: with DEVHOST_SPAN_FILE set, every devhost process appends its finished spans as JSON lines.

Spans come from the host process (triggers) and every worker process (orchestrations, activities); one file lets
a test or a person check that one run is one trace.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from devhost.config import ConfigError
from devhost.hooks import AppHooks
from devhost.settings import DEVHOST_SPAN_FILE

log = logging.getLogger(__name__)
_lock = threading.Lock()

# Per-request logs of the Azure SDKs and the engine's own chatter drown the app's logs at INFO.
QUIET_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "aiohttp.access",
    "durabletask",
    "durabletask-worker",
    "durabletask-client",
)


def _exporter(path: str) -> Any:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesSpanExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = []
            for span in spans:
                context = span.get_span_context()
                lines.append(
                    json.dumps(
                        {
                            "name": span.name,
                            "trace_id": format(context.trace_id, "032x") if context else "",
                            "span_id": format(context.span_id, "016x") if context else "",
                            "parent_span_id": format(span.parent.span_id, "016x") if span.parent else "",
                            "kind": span.kind.name,
                            "attributes": {
                                k: v for k, v in (span.attributes or {}).items() if isinstance(v, str | int)
                            },
                            "pid": os.getpid(),
                        }
                    )
                )
            with (
                _lock,
                open(path, "a", encoding="utf-8") as handle,
            ):  # O_APPEND: lines of many processes interleave whole
                handle.write("".join(line + "\n" for line in lines))
            return SpanExportResult.SUCCESS

    return JsonLinesSpanExporter()


def install_span_file(hooks: AppHooks) -> None:
    path = DEVHOST_SPAN_FILE.get()
    if not path:
        return
    if hooks.configure_telemetry is None:
        raise ConfigError(
            "DEVHOST_SPAN_FILE is set, but DEVHOST_APP_HOOKS gives devhost no configure_telemetry hook to add "
            "the span file to the app's tracing"
        )
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    hooks.configure_telemetry(SimpleSpanProcessor(_exporter(path)))
    log.info("spans of this process are appended to %s", path)


class TraceIdFormatter(logging.Formatter):
    """Adds ` [trace <id>]` to records that carry one (the app's telemetry puts trace_id on every record)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", "")
        return f"{text} [trace {trace_id}]" if trace_id else text
