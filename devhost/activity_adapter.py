"""Activities on durabletask's activity executor, called as the Python worker calls them.

JSON in and out through the worker's `ActivityTriggerConverter`, async functions on the worker's event loop, each
execution logged as the host logs it. A result larger than devhost's gRPC message limit fails the activity with a
message saying so (the engine would refuse it, and the orchestration would wait forever).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import azure.functions as func
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.execution_log import execution
from devhost.index import FunctionSpec

# Room for the rest of the activity's answer (ids, token) beside its result.
_ENVELOPE_BYTES = 4096


class MessageTooLarge(Exception):
    """A payload larger than devhost's gRPC message limit; the message names the size and the setting."""


def make_activity(
    spec: FunctionSpec, loop: asyncio.AbstractEventLoop | None, max_message_bytes: int
) -> Callable[[Any, Any], Any]:
    """The durabletask activity callable of `spec`, registered under its Durable name."""
    arg_name = spec.trigger["name"]
    wants_context = "context" in spec.parameters

    def activity(ctx: Any, activity_input: Any) -> Any:
        with execution(spec.name):
            result = _call(spec, arg_name, wants_context, activity_input, loop)
            encoded = ActivityTriggerConverter.encode(result, expected_type=None)
            text = str(encoded.value) if encoded.value is not None else None
            if text is not None and len(text.encode()) + _ENVELOPE_BYTES > max_message_bytes:
                raise MessageTooLarge(
                    f"result of {len(text.encode())} bytes exceeds devhost's gRPC message limit of "
                    f"{max_message_bytes} bytes (DEVHOST_GRPC_MAX_MESSAGE_MB); keep large data in blob storage "
                    "and return a reference to it"
                )
            return json.loads(text) if text is not None else None

    activity.__name__ = spec.registered_name
    return activity


def _call(
    spec: FunctionSpec, arg_name: str, wants_context: bool, activity_input: Any, loop: asyncio.AbstractEventLoop | None
) -> Any:
    # The real worker receives a JSON string and decodes it with the library's converter.
    datum = func.meta.Datum(type="json", value=json.dumps(activity_input))
    value = ActivityTriggerConverter.decode(datum, trigger_metadata=None)
    kwargs: dict[str, Any] = {arg_name: value}
    if wants_context:
        from devhost.invocation import DevContext, child_traceparent

        kwargs["context"] = DevContext(spec.name, "", child_traceparent(None))
    if not spec.is_async:
        return spec.func(**kwargs)
    if loop is None:
        raise RuntimeError(f"activity {spec.name} is async but no event loop runs")
    future: Future[Any] = asyncio.run_coroutine_threadsafe(spec.func(**kwargs), loop)
    return future.result()
