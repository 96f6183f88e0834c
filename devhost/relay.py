"""Blob -> Event Grid relay: Azurite raises no events, so devhost watches containers and delivers `BlobCreated`.

Subscriptions mirror Event Grid's (function name, subjectBeginsWith, subjectEndsWith, case-insensitive). Each blob
version (name + eTag) gets one event per matching subscription, posted to the host's own webhook with the
`eventgrid_extension` key, as a subscription does. Delivery is at least once, as Event Grid's:

- An event stays in the relay's journal (`relay-journal.json` in the data dir) from the moment its blob version is
  seen until the work it started is done: a failed delivery is retried with backoff (Event Grid retries non-2xx
  answers), and a delivered event is kept until every Durable instance its invocation started has ended.
- On Azure that work survives a host crash (the task hub keeps it); devhost's engine keeps it in memory only. So
  after a restart the relay delivers again, with the same event id, every event whose work had not ended; a blob
  version uploaded while devhost was down is seen by the next listing and delivered as usual.
- Versions whose work ended are remembered in `relay-state.json`, so a restart delivers nothing twice that had
  finished; the app must still be idempotent, as with Event Grid (a crash between delivery and these writes
  delivers again).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

CONTAINER_PREFIX = "/blobServices/default/containers/"
LIST_FAILURES_TO_WARN = 20  # passes (5 s at the default interval): longer than an Azurite restart
MAX_RETRY_DELAY = 60.0


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


# Delivers one event to a function: the ids of the Durable instances its invocation started, or None if the
# webhook did not accept it (non-2xx, host stopping).
Deliver = Callable[[str, dict[str, Any]], list[str] | None]
# True once every one of these Durable instances has ended (or is gone).
InstancesEnded = Callable[[Sequence[str]], bool]


@dataclass
class Entry:
    """One event in the journal: seen, delivered (with the instances it started), or waiting for a retry."""

    key: str  # container/blob name
    etag: str
    function: str
    event: dict[str, Any]
    delivered: bool = False
    instances: list[str] = field(default_factory=list)
    session: str = ""  # the devhost run that delivered it
    attempts: int = 0
    not_before: float = 0.0  # monotonic time of the next attempt (not saved)

    @property
    def ident(self) -> str:
        return f"{self.key}@{self.etag}#{self.function}"

    def saved(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("not_before")
        return data


class BlobRelay:
    """Polls the subscribed containers, journals each new blob version's events and delivers them."""

    def __init__(
        self,
        connection_string: str,
        subscriptions: list[Subscription],
        state_dir: Path,
        deliver: Deliver,
        instances_ended: InstancesEnded | None = None,
        interval: float = 0.25,
        topic: str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/devhost/"
        "providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
    ):
        from azure.storage.blob import BlobServiceClient

        # No SDK retries: the next pass is the retry. (With the SDK's, one listing that Azurite keeps answering 500
        # took 82 s, and every other container waited for it.)
        self._service = BlobServiceClient.from_connection_string(connection_string, retry_total=0)
        self.subscriptions = subscriptions
        self.state_file = state_dir / "relay-state.json"
        self.journal_file = state_dir / "relay-journal.json"
        self.deliver = deliver
        self.instances_ended = instances_ended
        self.interval = interval
        self.topic = topic
        self.session = uuid.uuid4().hex
        self._delivered: dict[str, str] = {}  # key -> eTag whose work ended
        self._delivered_at: dict[str, int] = {}  # key -> the sequence number of that version's event
        self._journal: dict[str, Entry] = {}
        self._sequencer = 0
        self._list_failures: dict[str, int] = {}  # container -> passes in a row its listing failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # --- persistence -----------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            if self.state_file.exists():
                state = json.loads(self.state_file.read_text())
                self._delivered = dict(state.get("delivered", {}))
                self._delivered_at = {k: int(v) for k, v in state.get("sequences", {}).items()}
                self._sequencer = int(state.get("sequencer", 0))
            if self.journal_file.exists():
                for item in json.loads(self.journal_file.read_text()).get("events", []):
                    entry = Entry(**item)
                    self._journal[entry.ident] = entry
        except (OSError, ValueError, TypeError) as err:
            log.warning(
                "relay state in %s unreadable (%s); every blob not yet remembered is delivered",
                self.state_file.parent,
                err,
            )
        resumed = 0
        for ident, entry in list(self._journal.items()):
            if self._delivered.get(entry.key) == entry.etag:
                del self._journal[ident]  # ended; the journal was not rewritten before the stop
            elif entry.delivered and entry.session != self.session:
                # Its work lived in the previous run's engine: deliver again, as Event Grid retries.
                entry.delivered, entry.instances, entry.attempts = False, [], 0
                resumed += 1
        if resumed:
            log.warning(
                "relay: %d event(s) delivered before devhost stopped had not finished their work; delivering again",
                resumed,
            )
        self._sequencer = max([self._sequencer, *(self._sequence_of(e) for e in self._journal.values())])

    @staticmethod
    def _sequence_of(entry: Entry) -> int:
        try:
            return int(str(entry.event.get("data", {}).get("sequencer", "0")), 16)
        except ValueError:
            return 0

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document))
        tmp.replace(path)

    def _save(self, delivered_changed: bool) -> None:
        # The remembered versions first: a stop between the two writes leaves an ended entry in the journal,
        # which the next start drops.
        if delivered_changed:
            document = {"delivered": self._delivered, "sequences": self._delivered_at, "sequencer": self._sequencer}
            self._write(self.state_file, document)
        entries = sorted(self._journal.values(), key=self._sequence_of)
        self._write(self.journal_file, {"events": [e.saved() for e in entries]})

    # --- one pass --------------------------------------------------------------------------------------
    def ensure_containers(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for container in {s.container for s in self.subscriptions}:
            try:
                self._service.create_container(container)
                log.info("created container %s for the Event Grid relay", container)
            except ResourceExistsError:
                pass

    def poll_once(self) -> int:
        """One pass: journal new blob versions, deliver what is due, forget what ended. Returns deliveries made."""
        journal_before = {ident: (e.delivered, tuple(e.instances)) for ident, e in self._journal.items()}
        self._discover()
        delivered = self._deliver_due()
        delivered_changed = self._settle()
        journal_after = {ident: (e.delivered, tuple(e.instances)) for ident, e in self._journal.items()}
        if delivered_changed or journal_after != journal_before:
            self._save(delivered_changed)
        return delivered

    def _discover(self) -> None:
        for container in sorted({s.container for s in self.subscriptions}):
            client = self._service.get_container_client(container)
            try:
                blobs = list(client.list_blobs())
            except Exception as err:  # Azurite restarting or container deleted: try again next pass
                self._listing_failed(container, err)
                continue
            self._list_failures.pop(container, None)
            for blob in blobs:
                key, etag = f"{container}/{blob.name}", str(blob.etag)
                if self._delivered.get(key) == etag:
                    continue
                subject = f"{CONTAINER_PREFIX}{container}/blobs/{blob.name}"
                for sub in self.subscriptions:
                    if sub.container != container or not sub.matches(subject):
                        continue
                    ident = f"{key}@{etag}#{sub.function}"
                    if ident not in self._journal:
                        self._sequencer += 1
                        event = blob_created_event(self._service.url, container, blob, self._sequencer, self.topic)
                        self._journal[ident] = Entry(key, etag, sub.function, event)

    def _deliver_due(self) -> int:
        made = 0
        now = time.monotonic()
        for entry in sorted(self._journal.values(), key=self._sequence_of):
            if entry.delivered or now < entry.not_before or self._stop.is_set():
                continue
            made += 1
            try:
                started = self.deliver(entry.function, entry.event)
            except Exception as err:  # host stopping or overloaded: back off like any failure
                log.warning("delivery of %s to %s failed: %s", entry.event["subject"], entry.function, err)
                started = None
            if started is None:
                # Exponential backoff capped at a minute, like Event Grid's retries of non-2xx answers.
                entry.not_before = time.monotonic() + min(MAX_RETRY_DELAY, 0.5 * 2**entry.attempts)
                entry.attempts += 1
                continue
            entry.delivered, entry.instances, entry.session = True, started, self.session
        return made

    def _settle(self) -> bool:
        """Forgets events whose work ended; a blob version is remembered once all its events are forgotten."""
        ended = [
            ident
            for ident, entry in self._journal.items()
            if entry.delivered and (not entry.instances or self.instances_ended is None or self._ended(entry))
        ]
        changed = False
        for ident in ended:
            entry = self._journal.pop(ident)
            siblings = [e for e in self._journal.values() if (e.key, e.etag) == (entry.key, entry.etag)]
            sequence = self._sequence_of(entry)
            # An older version ending after a newer one must not replace it: the listing shows the newer eTag.
            if not siblings and sequence >= self._delivered_at.get(entry.key, 0):
                self._delivered[entry.key] = entry.etag
                self._delivered_at[entry.key] = sequence
                changed = True
        return changed

    def _ended(self, entry: Entry) -> bool:
        assert self.instances_ended is not None
        try:
            return self.instances_ended(entry.instances)
        except Exception as err:  # engine stopping: ask again next pass
            log.debug("relay cannot check instances %s: %s", entry.instances, err)
            return False

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

    # --- thread ----------------------------------------------------------------------------------------
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
