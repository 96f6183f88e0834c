"""Blob storage of the app's data account: one cached client per process and the calls scoring needs.

Every write here is safe to repeat (Durable runs activities at least once): blocks are staged under ids
derived from the chunk, block lists are committed whole, deletes and container creation ignore "already done".
Storage errors leave this module as our own errors (StorageError and subclasses, SourceChangedError) whose
messages name the blob and the service's error code: never the service's XML body.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import settings
from shared.errors import (
    BlocksLostError,
    NotFoundError,
    OutputChangedError,
    SettingsError,
    SourceChangedError,
    StorageError,
)

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


def _etag(etag: str) -> str:
    """An ETag as Event Grid and our messages show it: without the HTTP quotes."""
    return etag.strip('"')


@contextmanager
def _storage_errors(action: str, container: str, name: str = "") -> Iterator[None]:
    """Turn azure-core's errors (their str() carries the service's XML body) into a StorageError naming the blob."""
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        yield
    except HttpResponseError as err:
        code = getattr(err, "error_code", None) or err.reason or "no error code"
        where = f"{container}/{name}" if name else container
        raise StorageError(f"blob storage could not {action} {where}: {code} (HTTP {err.status_code})") from err
    except AzureError as err:
        # No HTTP answer at all (connection refused, timeout): the first line says which.
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        where = f"{container}/{name}" if name else container
        raise StorageError(f"blob storage could not {action} {where}: {first}") from err


def source_changed(container: str, name: str, etag: str, env: Mapping[str, str] | None = None) -> SourceChangedError:
    """What became of an input blob that no longer has `etag`, in plain words: deleted, or replaced by which eTag."""
    current = find_blob(container, name, env)
    if current is None:
        return SourceChangedError(
            f"{container}/{name} was deleted while it was being scored (this run scored eTag {_etag(etag)}); "
            "nothing was committed"
        )
    return SourceChangedError(
        f"{container}/{name} was replaced by eTag {_etag(current.etag)} while it was being scored (this run scored "
        f"eTag {_etag(etag)}); nothing was committed: the new version's own upload event scores it"
    )


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

    with _storage_errors("create container", container):
        try:
            blob_service_client(env).create_container(container)
            log.info("created container %s", container)
        except ResourceExistsError:
            pass


def blob_info(container: str, name: str, env: Mapping[str, str] | None = None) -> BlobInfo:
    """Size, ETag, content type and metadata of a blob; NotFoundError naming it when it does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    client = blob_service_client(env).get_blob_client(container, name)
    with _storage_errors("read the properties of", container, name):
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
    """Bytes [start, end) of a blob; with `etag`, SourceChangedError (deleted / replaced) if it changed since."""
    if end <= start:
        return b""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    client = blob_service_client(env).get_blob_client(container, name)
    kwargs: dict[str, Any] = {}
    if etag:
        kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    with _storage_errors("read", container, name):
        try:
            return bytes(client.download_blob(offset=start, length=end - start, **kwargs).readall())
        except ResourceModifiedError:
            pass  # the blob no longer has `etag`
        except ResourceNotFoundError as err:
            if not etag:
                raise NotFoundError(f"blob {container}/{name} does not exist") from err
    # A deleted blob answers a conditional read with 404 or 412, depending on the service: look which it was.
    raise source_changed(container, name, etag or "", env)


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

    with _storage_errors("write", container, name):
        blob_service_client(env).get_blob_client(container, name).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata=dict(metadata or {}),
        )


def stage_block(container: str, name: str, block: str, data: bytes, env: Mapping[str, str] | None = None) -> None:
    """Stage `data` as uncommitted block `block` of a blob; staging the same id again replaces it."""
    with _storage_errors("stage a block of", container, name):
        blob_service_client(env).get_blob_client(container, name).stage_block(block, data, length=len(data))


def uncommitted_blocks(container: str, name: str, env: Mapping[str, str] | None = None) -> set[str]:
    """Ids of the blob's staged, not yet committed blocks (empty when there is no such blob)."""
    from azure.core.exceptions import ResourceNotFoundError

    client = blob_service_client(env).get_blob_client(container, name)
    with _storage_errors("list the staged blocks of", container, name):
        try:
            _, uncommitted = client.get_block_list("uncommitted")
        except ResourceNotFoundError:
            return set()
    return {str(b.id) for b in uncommitted}


def commit_blocks(
    container: str,
    name: str,
    blocks: Sequence[str],
    *,
    content_type: str = "text/csv",
    metadata: Mapping[str, str] | None = None,
    if_match: str | None = None,
    if_missing: bool = False,
    env: Mapping[str, str] | None = None,
) -> str:
    """Make the blob exactly `blocks` in this order, atomically; returns the new ETag.

    Committing the same list twice gives the same blob (committed blocks can be listed again).
    With `if_match` (the blob must still have that ETag) or `if_missing` (the blob must not exist yet) the commit
    happens only if nobody committed the blob since the caller looked: OutputChangedError otherwise.
    BlocksLostError when a listed block is neither staged nor committed (another commit discarded it).
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
    from azure.storage.blob import BlobBlock, ContentSettings

    kwargs: dict[str, Any] = {}
    if if_match:
        kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
    elif if_missing:
        kwargs = {"match_condition": MatchConditions.IfMissing}
    client = blob_service_client(env).get_blob_client(container, name)
    with _storage_errors("commit", container, name):
        try:
            result = client.commit_block_list(
                [BlobBlock(block_id=b) for b in blocks],
                content_settings=ContentSettings(content_type=content_type),
                metadata=dict(metadata or {}),
                **kwargs,
            )
        except (ResourceModifiedError, ResourceExistsError) as err:
            # 412 for If-Match; If-None-Match: * on an existing blob answers 409 BlobAlreadyExists.
            raise OutputChangedError(f"{container}/{name} was committed by another run meanwhile") from err
        except HttpResponseError as err:
            if getattr(err, "error_code", None) != "InvalidBlockList":
                raise
            raise BlocksLostError(
                f"the staged blocks of {container}/{name} were discarded by another run's commit"
            ) from err
    return str(result.get("etag", ""))


def delete_blob(
    container: str, name: str, env: Mapping[str, str] | None = None, *, if_match: str | None = None
) -> bool:
    """Delete a blob if it exists; True if something was deleted (a repeat deletes nothing and succeeds).

    With `if_match`, only that version is deleted: False when the blob was written since (it is left alone).
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    kwargs: dict[str, Any] = {}
    if if_match:
        kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
    with _storage_errors("delete", container, name):
        try:
            blob_service_client(env).get_blob_client(container, name).delete_blob(**kwargs)
        except (ResourceNotFoundError, ResourceModifiedError):
            return False
    return True


def list_names(container: str, prefix: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the blobs under `prefix` (empty when the container does not exist).

    The SDK's name-only listing: it skips deserializing every blob's properties, about 5x faster than list_blobs
    (0.1 s against 0.5 s for 1,000 blobs on Azurite).
    """
    from azure.core.exceptions import ResourceNotFoundError

    with _storage_errors("list", container):
        try:
            return list(
                blob_service_client(env).get_container_client(container).list_blob_names(name_starts_with=prefix)
            )
        except ResourceNotFoundError:
            return []


def read_start(container: str, name: str, length: int, env: Mapping[str, str] | None = None) -> tuple[bytes, int]:
    """The first `length` bytes of a blob (all of it when shorter) and its whole size, in one request;
    NotFoundError naming it when it does not exist."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    with _storage_errors("read", container, name):
        try:
            download = blob_service_client(env).get_blob_client(container, name).download_blob(offset=0, length=length)
            data = bytes(download.readall())
        except ResourceNotFoundError as err:
            raise NotFoundError(f"blob {container}/{name} does not exist") from err
        except HttpResponseError as err:
            if err.status_code == 416:  # a range of an empty blob
                return b"", 0
            raise
    # `Content-Range: bytes 0-8191/3890434`: the part after the slash is the blob's size.
    whole = (download.properties.content_range or "").rpartition("/")[2]
    return data, int(whole) if whole.isdigit() else len(data)


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

    with _storage_errors("list", container):
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

    with _storage_errors("read", container, name):
        try:
            return bytes(blob_service_client(env).get_blob_client(container, name).download_blob().readall())
        except ResourceNotFoundError as err:
            raise NotFoundError(f"blob {container}/{name} does not exist") from err


def read_blob_etag(container: str, name: str, env: Mapping[str, str] | None = None) -> tuple[bytes, str] | None:
    """The content of a (small) blob and the ETag of exactly that content (for a conditional write back with
    `upload_if`); None when the blob does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    with _storage_errors("read", container, name):
        try:
            downloader = blob_service_client(env).get_blob_client(container, name).download_blob()
            return bytes(downloader.readall()), str(downloader.properties.etag)
        except ResourceNotFoundError:
            return None


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


def upload_if(
    container: str,
    name: str,
    data: bytes,
    *,
    content_type: str,
    metadata: Mapping[str, str] | None = None,
    if_match: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Write a whole (small) blob only if it still is as seen: `if_match` its ETag, None: it must not exist.

    OutputChangedError when someone wrote or deleted it since; returns the new ETag.
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.storage.blob import ContentSettings

    kwargs: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
    if if_match:
        kwargs = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
    with _storage_errors("write", container, name):
        try:
            result = (
                blob_service_client(env)
                .get_blob_client(container, name)
                .upload_blob(
                    data,
                    overwrite=True,
                    content_settings=ContentSettings(content_type=content_type),
                    metadata=dict(metadata or {}),
                    **kwargs,
                )
            )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as err:
            # 412 for If-Match (also when the blob was deleted); If-None-Match: * on an existing blob answers 409.
            raise OutputChangedError(f"{container}/{name} was written by another run meanwhile") from err
    return str(result.get("etag", ""))
