"""The entity operations of the Durable HTTP API (`/runtime/webhooks/durabletask/entities/...`) over the engine.

As the extension's HttpApiHandler answers them (`EntityRoute` = `entities/{entityName?}/{entityKey?}`):

- `POST /entities/{name}/{key}?op=<operation>` (and `DELETE`, the operation "delete"): signals the entity, 202.
  A JSON body (`application/json`) is parsed (400 "Could not parse JSON content: ..." if it is not JSON) and becomes
  the operation's input; another body is taken as a string; no body is no input. An entity name the app has no
  entity function for answers 400 with ThrowIfFunctionDoesNotExist's message. df's `signal_entity` comes here.
- `GET /entities/{name}/{key}`: 200 with the entity's state as JSON, 404 when it has none (df's
  `read_entity_state` reads both). A key of `$` means the empty key.
- `GET /entities/{name}`: the entities of that name, `[{"entityId": {"name", "key"}, "lastOperationTime",
  "state"}]` (`fetchState=true` for the state).
"""

from __future__ import annotations

import json
from typing import Any

from durabletask import client as dtc
from durabletask.entities import EntityInstanceId

from devhost.durable_api import ApiResponse
from devhost.durable_catalog import ENTITY, DurableCatalog


def _iso(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


class EntityApi:
    """Entity signals and state reads for the real `DurableOrchestrationClient`, at the extension's routes."""

    def __init__(self, client: dtc.TaskHubGrpcClient, catalog: DurableCatalog):
        self.client = client
        self.catalog = catalog

    def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, content_type: str
    ) -> ApiResponse:
        """`parts` are the path segments after `entities/`."""
        if not parts or len(parts) > 2:
            return ApiResponse(404, {"Message": "expected /entities/{entityName}/{entityKey}"})
        name, key = parts[0], parts[1] if len(parts) == 2 else ""
        if method == "GET":
            return self.read(name, key) if key else self.list(name, query)
        if method in {"POST", "DELETE"} and key:
            operation = "delete" if method == "DELETE" else query.get("op", "")
            return self.signal(name, key, operation, body, content_type)
        return ApiResponse(404, {"Message": f"no entity operation {method} /entities/{'/'.join(parts)}"})

    def signal(self, name: str, key: str, operation: str, body: bytes, content_type: str) -> ApiResponse:
        if self.catalog.find(ENTITY, name) is None:
            return ApiResponse(400, {"Message": self.catalog.missing_message(ENTITY, name)})
        operation_input: Any = None
        if body:
            text = body.decode("utf-8", errors="replace")
            if content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json":
                try:
                    operation_input = json.loads(text)
                except json.JSONDecodeError as err:
                    return ApiResponse(400, {"Message": f"Could not parse JSON content: {err}"})
            else:
                operation_input = text
        # The engine serializes the input once, as the extension serializes the parsed body (a string stays a string).
        self.client.signal_entity(EntityInstanceId(name, key), operation, input=operation_input)
        return ApiResponse(202)

    def read(self, name: str, key: str) -> ApiResponse:
        entity = self.client.get_entity(EntityInstanceId(name, "" if key == "$" else key), include_state=True)
        state = entity.get_state() if entity is not None else None
        if not state:  # an entity without state does not exist for a reader (includeStateless: false)
            return ApiResponse(404, {"Message": f"no entity @{name.lower()}@{key} with state"})
        return ApiResponse(200, json.loads(state))

    def list(self, name: str, query: dict[str, str]) -> ApiResponse:
        fetch_state = query.get("fetchState", "").lower() == "true"
        entities = self.client.get_all_entities(
            dtc.EntityQuery(instance_id_starts_with=f"@{name.lower()}@", include_state=fetch_state)
        )
        listed = []
        for entity in entities:
            state = entity.get_state() if fetch_state else None
            item: dict[str, Any] = {
                "entityId": {"name": entity.id.entity, "key": entity.id.key},
                "lastOperationTime": _iso(entity.last_modified),
            }
            if fetch_state:
                item["state"] = json.loads(state) if state else None
            listed.append(item)
        return ApiResponse(200, listed)
