"""Blob -> Event Grid relay: Azurite raises no events, so devhost watches containers and delivers `BlobCreated`.

Subscriptions mirror Event Grid's (function name, subjectBeginsWith, subjectEndsWith, case-insensitive). Each blob
version (name + eTag) is delivered once, through the host's own webhook; what was delivered is remembered on disk
so a restart does not deliver it again, while a blob uploaded during downtime is still delivered (as Event Grid's
retries would).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

CONTAINER_PREFIX = "/blobServices/default/containers/"
LIST_FAILURES_TO_WARN = 20  # passes (5 s at the default interval): longer than an Azurite restart


@dataclass(frozen=True)
class Subscription:
    function: str
    subject_begins_with: str
    subject_ends_with: str = ""

    @property
    def container(self) -> str:
        if not self.subject_begins_with.lower().startswith(CONTAINER_PREFIX.lower()):
            raise ValueError(
                f"subscription of {self.function}: subjectBeginsWith must start with {CONTAINER_PREFIX}<container>/"
            )
        return self.subject_begins_with[len(CONTAINER_PREFIX) :].split("/", 1)[0]

    def matches(self, subject: str) -> bool:
        lowered = subject.lower()
        return lowered.startswith(self.subject_begins_with.lower()) and lowered.endswith(self.subject_ends_with.lower())


def parse_subscriptions(text: str) -> list[Subscription]:
    """DEVHOST_EVENTGRID_SUBSCRIPTIONS: a JSON list of {function, subjectBeginsWith, subjectEndsWith}."""
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"DEVHOST_EVENTGRID_SUBSCRIPTIONS is not JSON: {err}") from None
    if not isinstance(items, list):
        raise ValueError("DEVHOST_EVENTGRID_SUBSCRIPTIONS must be a JSON list")
    subscriptions = []
    for item in items:
        if not isinstance(item, dict) or not item.get("function") or not item.get("subjectBeginsWith"):
            raise ValueError(
                f"each DEVHOST_EVENTGRID_SUBSCRIPTIONS entry needs 'function' and 'subjectBeginsWith', got {item!r}"
            )
        sub = Subscription(str(item["function"]), str(item["subjectBeginsWith"]), str(item.get("subjectEndsWith", "")))
        _ = sub.container  # validates the prefix
        subscriptions.append(sub)
    return subscriptions


def blob_created_event(account_url: str, container: str, blob: Any, sequencer: int, topic: str) -> dict[str, Any]:
    """A `Microsoft.Storage.BlobCreated` event (Event Grid schema) for one committed blob version."""
    modified = blob.last_modified or datetime.now(UTC)
    content = getattr(blob, "content_settings", None)
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": f"{CONTAINER_PREFIX}{container}/blobs/{blob.name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": modified.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlockList" if (blob.size or 0) > 0 else "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": str(blob.etag).strip('"'),
            "contentType": (content.content_type if content else None) or "application/octet-stream",
            "contentLength": int(blob.size or 0),
            "blobType": "BlockBlob",
            "url": f"{account_url.rstrip('/')}/{container}/{quote(blob.name)}",
            "sequencer": f"{sequencer:032X}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
    }


class BlobRelay:
    """Polls the subscribed containers and hands each new blob version's event to `deliver`."""

    def __init__(
        self,
        connection_string: str,
        subscriptions: list[Subscription],
        state_file: Path,
        deliver: Callable[[str, dict[str, Any]], bool],
        interval: float = 0.25,
        topic: str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/devhost/"
        "providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
    ):
        from azure.storage.blob import BlobServiceClient

        # No SDK retries: the next pass is the retry. (With the SDK's, one listing that Azurite keeps answering 500
        # took 82 s, and every other container waited for it.)
        self._service = BlobServiceClient.from_connection_string(connection_string, retry_total=0)
        self.subscriptions = subscriptions
        self.state_file = state_file
        self.deliver = deliver
        self.interval = interval
        self.topic = topic
        self._delivered: dict[str, str] = {}
        # key -> (failed attempts, monotonic time of the next attempt): Event Grid backs off between retries.
        self._retry: dict[str, tuple[int, float]] = {}
        self._sequencer = 0
        self._list_failures: dict[str, int] = {}  # container -> passes in a row its listing failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_state()

    def _load_state(self) -> None:
        if self.state_file.exists():
            try:
                state = json.loads(self.state_file.read_text())
                self._delivered = dict(state.get("delivered", {}))
                self._sequencer = int(state.get("sequencer", 0))
            except (OSError, ValueError) as err:
                log.warning("relay state %s unreadable (%s); starting afresh", self.state_file, err)

    def _save_state(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"delivered": self._delivered, "sequencer": self._sequencer}))
        tmp.replace(self.state_file)

    def ensure_containers(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for container in {s.container for s in self.subscriptions}:
            try:
                self._service.create_container(container)
                log.info("created container %s for the Event Grid relay", container)
            except ResourceExistsError:
                pass

    def poll_once(self) -> int:
        """One pass over the containers; returns how many events were delivered."""
        delivered = 0
        dirty = False
        for container in sorted({s.container for s in self.subscriptions}):
            client = self._service.get_container_client(container)
            try:
                blobs = list(client.list_blobs())
            except Exception as err:  # Azurite restarting or container deleted: try again next pass
                self._listing_failed(container, err)
                continue
            self._list_failures.pop(container, None)
            for blob in blobs:
                key = f"{container}/{blob.name}"
                etag = str(blob.etag)
                if self._delivered.get(key) == etag:
                    continue
                attempts, not_before = self._retry.get(f"{key}@{etag}", (0, 0.0))
                if time.monotonic() < not_before:
                    continue
                subject = f"{CONTAINER_PREFIX}{container}/blobs/{blob.name}"
                targets = [s for s in self.subscriptions if s.container == container and s.matches(subject)]
                ok = True
                for sub in targets:
                    self._sequencer += 1
                    event = blob_created_event(self._service.url, container, blob, self._sequencer, self.topic)
                    try:
                        ok = self.deliver(sub.function, event) and ok
                    except Exception as err:  # host stopping or overloaded: back off like any failure
                        log.warning("delivery of %s to %s failed: %s", event["subject"], sub.function, err)
                        ok = False
                    delivered += 1
                if ok:
                    # Remember only what the function accepted: a failed delivery is retried later, with
                    # exponential backoff (capped at a minute), like Event Grid's retry of non-2xx answers.
                    self._delivered[key] = etag
                    self._retry.pop(f"{key}@{etag}", None)
                    dirty = True
                else:
                    delay = min(60.0, 0.5 * 2**attempts)
                    self._retry[f"{key}@{etag}"] = (attempts + 1, time.monotonic() + delay)
        if dirty:
            self._save_state()  # once a pass: the file grows with every blob ever delivered
        return delivered

    def _listing_failed(self, container: str, err: Exception) -> None:
        """A restart of Azurite fails a pass or two; a listing that keeps failing blinds the relay to every blob of the
        container, so it is said once (a warning, not a debug line nobody sees)."""
        failures = self._list_failures[container] = self._list_failures.get(container, 0) + 1
        log.debug("relay cannot list %s: %s", container, err)
        if failures == LIST_FAILURES_TO_WARN:
            log.warning(
                "relay: listing container %s failed %s times in a row, so none of its blobs gets an event (%s); "
                "Azurite answers 500 to a listing holding a blob named with a control character other than tab, CR "
                "or LF (Azure Storage refuses such names): delete that blob",
                container,
                failures,
                str(err).splitlines()[0] if str(err) else type(err).__name__,
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:
                log.exception("blob relay pass failed")

    def start(self) -> None:
        self.ensure_containers()
        self._thread = threading.Thread(target=self._run, name="blob-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
