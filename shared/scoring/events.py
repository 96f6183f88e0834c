"""What starts a scoring run: a BlobCreated event or an HTTP request, turned into a `ScoringRequest` and an id.

The orchestration instance id is derived from the configured data account and the blob's container, name and
eTag, so a redelivered event (Event Grid delivers at least once) maps to the run that already exists instead of
starting another, and an event naming another storage host cannot make a second id for the same version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from shared.errors import InputError
from shared.scoring.payloads import ScoringRequest

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
# The name is everything after /blobs/, line breaks included: a name is not a line of text (and `.` without DOTALL
# would not match a CR or LF, so such an event used to be dropped as "malformed", silently).
_SUBJECT_RE = re.compile(r"/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)", re.DOTALL)
# Control characters: Azure Storage refuses them in blob names; Azurite stores them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {"\r": "carriage return", "\n": "line feed", "\t": "tab", "\x00": "NUL"}
# ADLS Gen2 raises CreateFile for the empty file before the data is flushed; FlushWithClose follows with the data.
_IGNORED_APIS = {"CreateFile"}
MAX_BLOB_NAME = 1024


@dataclass(frozen=True)
class BlobCreated:
    """The parts of a BlobCreated event that scoring needs."""

    event_id: str
    account: str
    container: str
    name: str
    etag: str
    size: int
    api: str
    url: str


def parse_blob_created(event_id: str, event_type: str, subject: str, data: Any) -> BlobCreated | None:
    """A BlobCreated event as a domain object; None for other event types. InputError when it is malformed."""
    if event_type != BLOB_CREATED:
        return None
    match = _SUBJECT_RE.fullmatch(subject or "")
    if match is None:
        raise InputError(
            f"event {event_id}: subject {subject!r} is not /blobServices/default/containers/<container>/blobs/<name>"
        )
    if not isinstance(data, dict):
        raise InputError(f"event {event_id}: data must be an object, got {type(data).__name__}")
    url = str(data.get("url") or "")
    etag = str(data.get("eTag") or "").strip('"')
    if not url or not etag:
        raise InputError(f"event {event_id}: data.url and data.eTag are required")
    length = data.get("contentLength") or 0
    # A float or a string would slip through int(); a size is a non-negative integer, as Event Grid sends it.
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise InputError(f"event {event_id}: data.contentLength {length!r} is not a non-negative integer")
    size = length
    return BlobCreated(
        event_id=event_id,
        account=account_of(url),
        container=match.group("container"),
        name=match.group("name"),
        etag=etag,
        size=size,
        api=str(data.get("api") or ""),
        url=url,
    )


def _is_path_style(host: str) -> bool:
    # Azurite (and any emulator on an IP address) puts the account in the path: http://127.0.0.1:10000/acct/...
    return host in {"127.0.0.1", "localhost"} or host.replace(".", "").isdigit()


def account_of(url: str) -> str:
    """Storage account of a blob URL: the host's first label, or the first path segment for Azurite URLs."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if _is_path_style(host):
        return unquote(parsed.path.lstrip("/").split("/", 1)[0])
    return host.split(".", 1)[0]


def container_of(url: str) -> str:
    """Container of a blob URL (the path segment after the account for Azurite URLs)."""
    parsed = urlparse(url)
    segments = parsed.path.lstrip("/").split("/")
    if _is_path_style(parsed.hostname or ""):
        segments = segments[1:]
    return unquote(segments[0]) if segments else ""


def foreign_reason(blob: BlobCreated, account: str) -> str | None:
    """Why an event is not about our storage (None: it is). `account` is the configured data account.

    The run id and the blob read come from configuration, never from the event's URL: a forged delivery naming
    another host must not start a run (nor several runs of one version, one per host).
    """
    if blob.account.lower() != account.lower():
        return f"data.url names storage account {blob.account!r}, not the configured account {account!r}"
    url_container = container_of(blob.url)
    if url_container != blob.container:
        return f"data.url names container {url_container!r} but the subject names {blob.container!r}"
    return None


def unsafe_name_reason(name: str) -> str | None:
    """Why a blob name must not be used to build other blobs' URLs (None: it is safe).

    HTTP clients normalize `.` and `..` path segments, so such a name could address a blob in another
    container; with identity-based (bearer) access nothing would catch it.
    """
    segments = name.replace("\\", "/").split("/")
    if any(segment in {".", ".."} for segment in segments):
        return f"blob name {name!r} has a '.' or '..' path segment"
    if "\x00" in name:
        return f"blob name {name!r} contains a NUL character"
    return None


def control_character_reason(name: str) -> str | None:
    """Why a blob name cannot be scored for its control characters (None: it has none).

    Azure Storage does not allow control characters in blob names, so such a blob exists only in an emulator
    (Azurite stores it); its run fails with this reason in the error document, rather than being dropped.
    """
    found = CONTROL_CHARACTERS.search(name)
    if found is None:
        return None
    char = found.group()
    label = f" ({_CONTROL_NAMES[char]})" if char in _CONTROL_NAMES else ""
    return (
        f"blob name {name!r} contains the control character U+{ord(char):04X}{label} at position {found.start()}: "
        "Azure Storage does not allow control characters (U+0000 to U+001F, U+007F to U+009F) in blob names; "
        "upload the file again under a name without them"
    )


def ignore_reason(blob: BlobCreated, input_container: str) -> str | None:
    """Why the blob of an event is not scored (None: it is)."""
    if blob.api in _IGNORED_APIS:
        return f"api {blob.api} creates an empty file; its FlushWithClose event carries the data"
    return not_scored_reason(blob.container, blob.name, input_container)


def not_scored_reason(container: str, name: str, input_container: str) -> str | None:
    """Why a blob is never scored, however it is named to us (event or HTTP request); None: it may be."""
    if container != input_container:
        return f"container {container!r} is not the input container {input_container!r}"
    if not name.lower().endswith(".csv"):
        return f"blob {name!r} does not end in .csv"
    if len(name) > MAX_BLOB_NAME:
        return f"blob name is {len(name)} characters, more than {MAX_BLOB_NAME}"
    return unsafe_name_reason(name)


def scoring_instance_id(account: str, container: str, name: str, etag: str) -> str:
    """Same blob version -> same orchestration id (ids stay short and URL-safe whatever the blob name)."""
    digest = hashlib.sha256(f"{account}\n{container}\n{name}\n{etag.strip(chr(34))}".encode()).hexdigest()
    return f"score-{digest[:40]}"


def request_for(blob: BlobCreated, account: str) -> ScoringRequest:
    """The run's request; `account` is the configured data account (checked against the event by foreign_reason)."""
    return ScoringRequest(account=account, container=blob.container, name=blob.name, etag=blob.etag, size=blob.size)
