"""Blob storage of the app's data account: one cached client per process and the calls scoring needs.

Every write here is safe to repeat (Durable runs activities at least once): blocks are staged under ids
derived from the chunk, block lists are committed whole, deletes and container creation ignore "already done".
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import settings
from shared.errors import NotFoundError, ScoringError, SettingsError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger(__name__)

_clients: dict[tuple[str, str, str], BlobServiceClient] = {}
_lock = threading.Lock()

# Azure requires every block id of one blob to have the same length: a fixed-width text, base64-encoded.
BLOCK_ID_WIDTH = 6


def blob_service_client(env: Mapping[str, str] | None = None) -> BlobServiceClient:
    """The data account's client: DATA_STORAGE (connection string) or DATA_STORAGE__serviceUri + identity."""
    conn = settings.DATA_STORAGE.get(env)
    uri = settings.DATA_STORAGE_SERVICE_URI.get(env)
    client_id = settings.DATA_STORAGE_CLIENT_ID.get(env)
    if not conn and not uri:
        raise SettingsError(
            "setting DATA_STORAGE (connection string) or DATA_STORAGE__serviceUri (blob endpoint) is required"
        )
    key = (conn, uri, client_id)
    with _lock:
        client = _clients.get(key)
        if client is None:
            from azure.storage.blob import BlobServiceClient

            if conn:
                client = BlobServiceClient.from_connection_string(conn)
            else:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential(managed_identity_client_id=client_id or None)
                client = BlobServiceClient(account_url=uri, credential=credential)
            _clients[key] = client
        return client


@dataclass(frozen=True)
class BlobInfo:
    """What scoring needs to know about a blob before reading it."""

    container: str
    name: str
    size: int
    etag: str
    content_type: str
    metadata: Mapping[str, str]


def block_id(index: int, prefix: str = "") -> str:
    """The block id of chunk `index`: same input -> same id, so a re-run overwrites its own block."""
    if not 0 <= index < 10**BLOCK_ID_WIDTH:
        raise ValueError(f"block index {index} is outside 0..{10**BLOCK_ID_WIDTH - 1}")
    return base64.b64encode(f"{prefix}{index:0{BLOCK_ID_WIDTH}d}".encode()).decode("ascii")


def ensure_container(container: str, env: Mapping[str, str] | None = None) -> None:
    """Create `container` if it does not exist (idempotent, also under a race with another writer)."""
    from azure.core.exceptions import ResourceExistsError

    try:
        blob_service_client(env).create_container(container)
        log.info("created container %s", container)
    except ResourceExistsError:
        pass


def blob_info(container: str, name: str, env: Mapping[str, str] | None = None) -> BlobInfo:
    """Size, ETag, content type and metadata of a blob; NotFoundError naming it when it does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    client = blob_service_client(env).get_blob_client(container, name)
    try:
        props = client.get_blob_properties()
    except ResourceNotFoundError as err:
        raise NotFoundError(f"blob {container}/{name} does not exist") from err
    return BlobInfo(
        container=container,
        name=name,
        size=int(props.size),
        etag=str(props.etag),
        content_type=str(props.content_settings.content_type or ""),
        metadata=dict(props.metadata or {}),
    )


def find_blob(container: str, name: str, env: Mapping[str, str] | None = None) -> BlobInfo | None:
    """Like blob_info, but None when the blob does not exist."""
    try:
        return blob_info(container, name, env)
    except NotFoundError:
        return None


def read_range(
    container: str,
    name: str,
    start: int,
    end: int,
    *,
    etag: str | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Bytes [start, end) of a blob; with `etag`, fails with ScoringError if the blob changed since."""
    if end <= start:
        return b""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    client = blob_service_client(env).get_blob_client(container, name)
    kwargs: dict[str, Any] = {}
    if etag:
        kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    try:
        return bytes(client.download_blob(offset=start, length=end - start, **kwargs).readall())
    except ResourceModifiedError as err:
        raise ScoringError(
            f"blob {container}/{name} changed while it was being scored (expected ETag {etag}); "
            "the new version is scored by its own run"
        ) from err
    except ResourceNotFoundError as err:
        raise NotFoundError(f"blob {container}/{name} does not exist (any more)") from err


def upload(
    container: str,
    name: str,
    data: bytes,
    *,
    content_type: str = "text/csv",
    metadata: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Write a whole (small) blob, replacing any previous content."""
    from azure.storage.blob import ContentSettings

    blob_service_client(env).get_blob_client(container, name).upload_blob(
        data,
        overwrite=True,
        content_settings=ContentSettings(content_type=content_type),
        metadata=dict(metadata or {}),
    )


def stage_block(container: str, name: str, block: str, data: bytes, env: Mapping[str, str] | None = None) -> None:
    """Stage `data` as uncommitted block `block` of a blob; staging the same id again replaces it."""
    blob_service_client(env).get_blob_client(container, name).stage_block(block, data, length=len(data))


def commit_blocks(
    container: str,
    name: str,
    blocks: Sequence[str],
    *,
    content_type: str = "text/csv",
    metadata: Mapping[str, str] | None = None,
    if_match: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Make the blob exactly `blocks` in this order, atomically; returns the new ETag.

    Committing the same list twice gives the same blob (committed blocks can be listed again).
    With `if_match`, the commit fails unless the blob still has that ETag (ResourceModifiedError).
    """
    from azure.core import MatchConditions
    from azure.storage.blob import BlobBlock, ContentSettings

    kwargs: dict[str, Any] = {}
    if if_match:
        kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
    result = (
        blob_service_client(env)
        .get_blob_client(container, name)
        .commit_block_list(
            [BlobBlock(block_id=b) for b in blocks],
            content_settings=ContentSettings(content_type=content_type),
            metadata=dict(metadata or {}),
            **kwargs,
        )
    )
    return str(result.get("etag", ""))


def delete_blob(container: str, name: str, env: Mapping[str, str] | None = None) -> bool:
    """Delete a blob if it exists; True if something was deleted (a repeat deletes nothing and succeeds)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        blob_service_client(env).get_blob_client(container, name).delete_blob()
    except ResourceNotFoundError:
        return False
    return True


def list_names(container: str, prefix: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the blobs under `prefix` (empty when the container does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [b.name for b in blob_service_client(env).get_container_client(container).list_blobs(prefix)]
    except ResourceNotFoundError:
        return []


# --- read helpers of the dashboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobListing:
    """A blob as a listing shows it: enough to tell whether a cached copy is still current."""

    name: str
    etag: str
    size: int
    last_modified: str  # ISO 8601, UTC


def list_blobs(container: str, prefix: str, env: Mapping[str, str] | None = None) -> list[BlobListing]:
    """The blobs under `prefix` with ETag, size and time (empty when the container does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [
            BlobListing(
                name=b.name,
                etag=str(b.etag),
                size=int(b.size or 0),
                last_modified=b.last_modified.isoformat() if b.last_modified else "",
            )
            for b in blob_service_client(env).get_container_client(container).list_blobs(prefix)
        ]
    except ResourceNotFoundError:
        return []


def read_blob(container: str, name: str, env: Mapping[str, str] | None = None) -> bytes:
    """The whole content of a (small) blob; NotFoundError naming it when it does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return bytes(blob_service_client(env).get_blob_client(container, name).download_blob().readall())
    except ResourceNotFoundError as err:
        raise NotFoundError(f"blob {container}/{name} does not exist") from err


def read_blobs(
    container: str, names: Sequence[str], env: Mapping[str, str] | None = None, *, workers: int = 8
) -> dict[str, bytes | None]:
    """Several small blobs read at once (each read is one round trip); None for a blob deleted meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    def read(name: str) -> bytes | None:
        try:
            return read_blob(container, name, env)
        except NotFoundError:
            return None

    if len(names) <= 1:
        return {name: read(name) for name in names}
    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        return dict(zip(names, pool.map(read, names), strict=True))
