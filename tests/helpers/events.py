"""Event Grid as the app meets it: `BlobCreated` events built here (not by devhost's relay, which is under test)
and posted to a host's Event Grid webhook the way Event Grid posts them."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import requests

from tests.devhost_runner import RunningHost

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
ACCOUNT = "devstoreaccount1"
TOPIC = f"/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
EVENT_TIME = "2026-11-26T10:00:00Z"


def webhook_path(function: str = "on_blob_created") -> str:
    """The host's Event Grid webhook for one function (the key is added by whoever posts)."""
    return f"/runtime/webhooks/eventgrid?functionName={function}"


def blob_created_event(
    account_url: str,
    container: str,
    name: str,
    etag: str,
    size: int,
    *,
    event_type: str = BLOB_CREATED,
    event_id: str | None = None,
    event_time: str = EVENT_TIME,
    sequencer: int = 1,
    topic: str = TOPIC,
) -> dict[str, Any]:
    """A BlobCreated event in the Event Grid schema, as a storage account's system topic sends it."""
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": topic,
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": event_type,
        "eventTime": event_time,
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": etag,
            "contentType": "text/csv",
            "contentLength": size,
            "blobType": "BlockBlob",
            "url": f"{account_url.rstrip('/')}/{container}/{quote(name)}",
            "sequencer": f"{sequencer:032X}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
    }


def account_url(host: RunningHost) -> str:
    """The blob endpoint of the host's Azurite account, as events name it."""
    return f"http://127.0.0.1:{host.azurite_port}/{ACCOUNT}"


def post_events(
    host: RunningHost,
    body: Any,
    *,
    function: str = "on_blob_created",
    event_type: str | None = "Notification",
    content_type: str = "application/json",
    key: bool = True,
    session: requests.Session | None = None,
) -> requests.Response:
    """Posts `body` (events, or raw bytes) to the Event Grid webhook as Event Grid does: the `eventgrid_extension`
    system key in the query string and `aeg-event-type` on every delivery, CloudEvents included (`event_type=None`
    leaves the header out, which Event Grid never does)."""
    headers = {"Content-Type": content_type}
    if event_type is not None:
        headers["aeg-event-type"] = event_type
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = host.base_url + webhook_path(function) + (f"&code={host.system_key('eventgrid_extension')}" if key else "")
    return (session or requests).post(url, data=data, headers=headers, timeout=30)


def blob_event(
    host: RunningHost, name: str, etag: str, size: int, *, container: str = "incoming", **options: Any
) -> dict[str, Any]:
    """A BlobCreated event for a blob in the host's Azurite (`options` as for `blob_created_event`)."""
    return blob_created_event(account_url(host), container, name, etag, size, **options)


def deliver(
    host: RunningHost, events: Any, *, cloud: bool = False, session: requests.Session | None = None
) -> requests.Response:
    """Delivers events to the app's `on_blob_created` (Event Grid schema, or one CloudEvent if `cloud`)."""
    if cloud:
        return post_events(host, events, content_type="application/cloudevents+json", session=session)
    return post_events(host, events, session=session)
