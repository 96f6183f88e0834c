"""Durable entities: df 1.x's entity protocol over durabletask's entity engine.

durabletask's engine keeps each entity's state and queue and hands a worker one batch of operations at a time
(`EntityBatchRequest`). The extension hands an out-of-process entity function the same batch as one JSON string
(EntityTriggerAttributeBindingProvider.EntityContextToString):

    {"self": {"name", "key"}, "exists": bool, "state": <state JSON text or null>,
     "batch": [{"name": <operation>, "input": <operation input text>, "isSignal": bool}]}

and reads back df's `EntityState` JSON: `entityExists`, `entityState` (JSON text), and one `{isError, result}` per
operation, `result` being df's JSON text of the return value (or of the error's message). This module translates
both ways; the engine delivers each result to the orchestration that called the operation.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from devhost.durable_catalog import ENTITY, DurableCatalog
from devhost.durabletask_internals import helpers as ph
from devhost.durabletask_internals import pb
from devhost.execution_log import execution

log = logging.getLogger("devhost.worker")


def batch_json(request: pb.EntityBatchRequest, infos: list[pb.OperationInfo]) -> str:
    """The entity trigger's JSON for one batch, as the extension builds it."""
    from durabletask.entities import EntityInstanceId

    entity = EntityInstanceId.parse(request.instanceId)
    state = request.entityState.value or None  # the engine sends no state, or an empty one, for a new entity
    answered = {
        info.requestId for info in infos if info.HasField("responseDestination") and info.responseDestination.instanceId
    }
    return json.dumps(
        {
            "self": {"name": entity.entity, "key": entity.key},
            "exists": state is not None,
            "state": state,
            "batch": [
                {
                    "name": operation.operation,
                    "input": operation.input.value if operation.HasField("input") else None,
                    "isSignal": operation.requestId not in answered,
                }
                for operation in request.operations
            ],
        }
    )


def batch_result(infos: list[pb.OperationInfo], answer: str) -> pb.EntityBatchResult:
    """df's `EntityState` JSON as the engine's batch result: the new state and one result per operation."""
    parsed: dict[str, Any] = json.loads(answer)
    now = ph.new_timestamp(datetime.now(UTC))
    results = []
    for item in parsed.get("results", []):
        text = item.get("result") or "null"
        if item.get("isError"):
            message = json.loads(text)
            details = pb.TaskFailureDetails(errorType="Exception", errorMessage=str(message))
            results.append(
                pb.OperationResult(failure=pb.OperationResultFailure(failureDetails=details, startTimeUtc=now))
            )
        else:
            success = pb.OperationResultSuccess(result=ph.get_string_value(text), startTimeUtc=now)
            results.append(pb.OperationResult(success=success))
    state = parsed.get("entityState") if parsed.get("entityExists") else None
    return pb.EntityBatchResult(results=results, entityState=ph.get_string_value(state), operationInfos=infos)


def _failed_batch(request: pb.EntityBatchRequest, infos: list[pb.OperationInfo], message: str) -> pb.EntityBatchResult:
    """Every operation of the batch failed with `message`; the state stays as it was."""
    details = pb.TaskFailureDetails(errorType="Exception", errorMessage=message)
    failed = [pb.OperationResult(failure=pb.OperationResultFailure(failureDetails=details)) for _ in request.operations]
    state = request.entityState.value or None
    return pb.EntityBatchResult(results=failed, entityState=ph.get_string_value(state), operationInfos=infos)


def execute_entity_batch(
    catalog: DurableCatalog, request: pb.EntityBatchRequest, infos: list[pb.OperationInfo]
) -> pb.EntityBatchResult:
    """Runs one batch through the entity function df registered (`Entity.create`'s handle), logged as the host
    logs an execution."""
    from durabletask.entities import EntityInstanceId

    name = EntityInstanceId.parse(request.instanceId).entity
    function = catalog.find(ENTITY, name)
    if function is None:
        return _failed_batch(request, infos, catalog.missing_message(ENTITY, name))
    with execution(function.function) as invocation:
        try:
            answer = function.handle(batch_json(request, infos))
        except Exception as err:  # df raises only for what it cannot run at all (no operation name, ...)
            invocation.fail(f"{type(err).__name__}: {err}")
            return _failed_batch(request, infos, f"{type(err).__name__}: {err}")
        result = batch_result(infos, str(answer))
        failures = [r.failure.failureDetails.errorMessage for r in result.results if r.HasField("failure")]
        if failures:
            log.warning(
                "%s: %d of %d operations failed: %s",
                request.instanceId,
                len(failures),
                len(result.results),
                failures[0],
            )
    if json.loads(str(answer)).get("signals"):
        log.warning(
            "%s: df asked to signal other entities; devhost ignores entity-to-entity signals", request.instanceId
        )
    return result
