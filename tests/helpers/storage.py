"""Blob storage as a user reaches it: the real SDK against the Azurite a devhost runs (imported lazily: unit
tests that never touch storage do not pay for it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.devhost_runner import RunningHost

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

INPUT = "incoming"

_services: dict[int, BlobServiceClient] = {}


def service_client(connection_string: str, **options: Any) -> BlobServiceClient:
    """A new client for `connection_string` (`options`: the SDK's, such as block sizes)."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(connection_string, **options)


def blob_service(host: RunningHost) -> BlobServiceClient:
    """The host's Azurite, one client per Azurite (its connection pool is reused across a module's tests)."""
    if host.azurite_port not in _services:
        _services[host.azurite_port] = service_client(host.storage_connection_string)
    return _services[host.azurite_port]


def ensure_container(service: BlobServiceClient, name: str) -> ContainerClient:
    """The container `name`, created if it is not there yet."""
    from azure.core.exceptions import ResourceExistsError

    container = service.get_container_client(name)
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    return container


def upload(host: RunningHost, name: str, data: bytes, container: str = INPUT) -> str:
    """Upload a blob (creating its container) and return its eTag without quotes."""
    blob = ensure_container(blob_service(host), container).get_blob_client(name)
    result = blob.upload_blob(data, overwrite=True, max_concurrency=4)
    return str(result["etag"]).strip('"')


def download(host: RunningHost, container: str, name: str) -> bytes | None:
    """The blob's content, or None if there is no such blob."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return bytes(blob_service(host).get_blob_client(container, name).download_blob(max_concurrency=4).readall())
    except ResourceNotFoundError:
        return None


def metadata(host: RunningHost, container: str, name: str) -> dict[str, str]:
    props = blob_service(host).get_blob_client(container, name).get_blob_properties()
    return dict(props.metadata)
