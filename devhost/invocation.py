"""What the Python worker hands a function: its `func.Context` (invocation id, W3C trace context) and arguments."""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc

from devhost.index import FunctionSpec

_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: continues `parent`'s trace when it is valid, else starts a new trace."""
    match = _TRACEPARENT_RE.match((parent or "").strip().lower())
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


class DevTraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: dict[str, str] | None = None):
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = attributes or {}

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class DevRetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class DevContext(func.Context):
    """The `context` argument of a function, as the Python worker builds it."""

    def __init__(self, function_name: str, function_directory: str, trace_parent: str, trace_state: str = ""):
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = DevTraceContext(trace_parent, trace_state)
        self._thread_local_storage = threading.local()
        self._retry_context = DevRetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:  # the library annotates type[threading.local]
        return self._thread_local_storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry_context


def build_kwargs(
    spec: FunctionSpec, trigger_value: Any, context: DevContext, durable_client_json: Callable[[], str | None]
) -> dict[str, Any]:
    """Arguments by binding name, as the worker passes them; `context` only when the function declares it."""
    kwargs: dict[str, Any] = {spec.trigger["name"]: trigger_value}
    for binding in spec.bindings:
        if binding is spec.trigger or str(binding.get("direction", "")).upper() != "IN":
            continue
        if binding.get("type") == "durableClient":
            client_json = durable_client_json()  # built only for functions that have the binding
            if client_json is None:
                raise RuntimeError(f"function {spec.name} needs a durableClient but no Durable engine runs")
            kwargs[binding["name"]] = client_json
        else:
            raise RuntimeError(f"function {spec.name}: input binding type {binding.get('type')!r} is not supported")
    if "context" in spec.parameters and "context" not in kwargs:
        kwargs["context"] = context
    return kwargs
