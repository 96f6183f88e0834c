"""Runs our azure-functions-durable 1.x orchestrator generators and activities on the durabletask engine.

The adapter offers the `DurableOrchestrationContext` API that our orchestrators use and translates each call to
the durabletask `OrchestrationContext`; activities receive and return JSON, as on the real host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.durable_functions import ActivityTriggerConverter
from durabletask import task as dt

from devhost.index import FunctionSpec

log = logging.getLogger(__name__)


def _name_of(function: Any) -> str:
    """df accepts a function name or the decorated function itself."""
    if isinstance(function, str):
        return function
    inner = getattr(function, "_function", None)
    if inner is not None and hasattr(inner, "get_function_name"):
        return str(inner.get_function_name())
    name = getattr(function, "__name__", None)
    if not name:
        raise TypeError(f"expected an orchestration or activity name, got {function!r}")
    return str(name)


def _retry_policy(retry_options: Any) -> dt.RetryPolicy:
    # df 1.x RetryOptions carry only the first interval and the attempt count; the extension's backoff
    # coefficient defaults to 1 (a fixed interval), so we use the same.
    return dt.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=retry_options.first_retry_interval_in_milliseconds),
        max_number_of_attempts=retry_options.max_number_of_attempts,
        backoff_coefficient=1.0,
    )


def _json_roundtrip(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be JSON-serializable: {err}") from err


class DurableContextAdapter:
    """The `df.DurableOrchestrationContext` surface our orchestrators use, over a durabletask context."""

    def __init__(self, ctx: dt.OrchestrationContext, orchestration_input: Any):
        self._ctx = ctx
        self._input = orchestration_input

    # --- identity and time -------------------------------------------------------------------------
    @property
    def instance_id(self) -> str:
        return self._ctx.instance_id

    @property
    def parent_instance_id(self) -> str | None:
        return self._ctx.parent_instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        # durabletask's clock is naive UTC; the Functions host hands a zone-aware UTC time.
        moment = self._ctx.current_utc_datetime
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @property
    def is_replaying(self) -> bool:
        return self._ctx.is_replaying

    def get_input(self) -> Any:
        return self._input

    def new_uuid(self) -> str:
        return str(self._ctx.new_uuid())

    def new_guid(self) -> uuid.UUID:
        return uuid.UUID(self.new_uuid())

    # --- tasks -------------------------------------------------------------------------------------
    def call_activity(self, name: Any, input_: Any = None) -> dt.Task[Any]:
        return self._ctx.call_activity(_name_of(name), input=_json_roundtrip(input_, "activity input"))

    def call_activity_with_retry(self, name: Any, retry_options: Any, input_: Any = None) -> dt.Task[Any]:
        return self._ctx.call_activity(
            _name_of(name),
            input=_json_roundtrip(input_, "activity input"),
            retry_policy=_retry_policy(retry_options),
        )

    def call_sub_orchestrator(self, name: Any, input_: Any = None, instance_id: str | None = None) -> dt.Task[Any]:
        return self._ctx.call_sub_orchestrator(
            _name_of(name), input=_json_roundtrip(input_, "sub-orchestration input"), instance_id=instance_id
        )

    def call_sub_orchestrator_with_retry(
        self, name: Any, retry_options: Any, input_: Any = None, instance_id: str | None = None
    ) -> dt.Task[Any]:
        return self._ctx.call_sub_orchestrator(
            _name_of(name),
            input=_json_roundtrip(input_, "sub-orchestration input"),
            instance_id=instance_id,
            retry_policy=_retry_policy(retry_options),
        )

    def task_all(self, activities: Sequence[dt.Task[Any]]) -> dt.Task[list[Any]]:
        return dt.when_all(list(activities))

    def task_any(self, activities: Sequence[dt.Task[Any]]) -> dt.Task[dt.Task[Any]]:
        return dt.when_any(list(activities))

    def create_timer(self, fire_at: datetime) -> dt.Task[Any]:
        return self._ctx.create_timer(fire_at)

    def wait_for_external_event(self, name: str) -> dt.Task[Any]:
        return self._ctx.wait_for_external_event(name)

    # --- state -------------------------------------------------------------------------------------
    def set_custom_status(self, status: Any) -> None:
        self._ctx.set_custom_status(_json_roundtrip(status, "custom status"))

    def continue_as_new(self, input_: Any) -> None:
        self._ctx.continue_as_new(_json_roundtrip(input_, "continue_as_new input"))


def make_orchestrator(spec: FunctionSpec) -> Callable[[dt.OrchestrationContext, Any], Any]:
    generator_function = spec.orchestrator_function

    def orchestrator(ctx: dt.OrchestrationContext, orchestration_input: Any) -> Any:
        result = generator_function(DurableContextAdapter(ctx, orchestration_input))
        if isinstance(result, Generator):
            output = yield from result
        else:
            output = result
        return _json_roundtrip(output, f"output of orchestrator {spec.name}")

    orchestrator.__name__ = spec.name
    return orchestrator


def make_activity(
    spec: FunctionSpec, loop: asyncio.AbstractEventLoop | None
) -> Callable[[dt.ActivityContext, Any], Any]:
    """An activity callable: JSON in through the worker's converter, JSON out, async functions on `loop`."""
    arg_name = spec.trigger["name"]
    wants_context = "context" in spec.parameters

    def activity(ctx: dt.ActivityContext, activity_input: Any) -> Any:
        # The real worker receives a JSON string and decodes it with the library's converter.
        datum = func.meta.Datum(type="json", value=json.dumps(activity_input))
        value = ActivityTriggerConverter.decode(datum, trigger_metadata=None)
        kwargs: dict[str, Any] = {arg_name: value}
        if wants_context:
            from devhost.invocation import DevContext, child_traceparent

            kwargs["context"] = DevContext(spec.name, "", child_traceparent(None))
        if spec.is_async:
            if loop is None:
                raise RuntimeError(f"activity {spec.name} is async but no event loop runs")
            future: Future[Any] = asyncio.run_coroutine_threadsafe(spec.func(**kwargs), loop)
            result = future.result()
        else:
            result = spec.func(**kwargs)
        encoded = ActivityTriggerConverter.encode(result, expected_type=None)
        return json.loads(str(encoded.value)) if encoded.value is not None else None

    activity.__name__ = spec.name
    return activity
