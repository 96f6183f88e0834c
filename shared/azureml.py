"""The process's MLClient per workspace (platform: the compute job and the model loader share it).

The SDK is imported lazily (about 1.7 s and 100 MB): constructing a client makes no request. Every client points at
AML_ARM_ENDPOINT (Azure or the local stand-in), retries within bounds, and counts and paces its requests against
ARM's request budget (`shared.arm_budget`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.arm_budget import budget_policy
from shared.settings import (
    AML_ARM_ENDPOINT,
    AML_HTTP_BACKOFF_SECONDS,
    AML_HTTP_RETRIES,
    AML_POLLING_INTERVAL_SECONDS,
    Workspace,
)

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
# Bounds of the SDK retry layer (see _client): a server's Retry-After is honoured up to this many seconds,
# and one SDK call with all its retries gives up after ARM_CALL_TIMEOUT_SECONDS.
RETRY_AFTER_CAP_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 8.0
ARM_CALL_TIMEOUT_SECONDS = 90.0


def _cloud_kwargs(endpoint: str) -> dict[str, Any]:
    """`cloud=` (+ `cloud_metadata=` for any other endpoint) so MLClient sends its requests and scopes there."""
    base = endpoint.strip().rstrip("/")
    if base.lower() == PUBLIC_ARM_ENDPOINT:
        return {"cloud": "AzureCloud"}
    # MLClient registers a cloud process-wide and refuses to redefine a name: derive the name from the endpoint.
    name = "ArmEndpoint" + hashlib.sha256(base.encode()).hexdigest()[:12]
    return {
        "cloud": name,
        "cloud_metadata": {
            "resource_manager": base + "/",
            "azure_portal": "https://portal.azure.com/",
            "active_directory": "https://login.microsoftonline.com/",
            "aml_resource_id": "https://ml.azure.com/",
            "storage_endpoint": "core.windows.net",
            "registry_discovery_endpoint": base + "/",
        },
    }


@dataclass(frozen=True)
class _ClientConfig:
    endpoint: str
    polling_interval: float
    retries: int
    backoff: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None) -> _ClientConfig:
        return cls(
            endpoint=AML_ARM_ENDPOINT.get(env),
            polling_interval=AML_POLLING_INTERVAL_SECONDS.get(env),
            retries=AML_HTTP_RETRIES.get(env),
            backoff=AML_HTTP_BACKOFF_SECONDS.get(env),
        )


_clients: dict[tuple[str, _ClientConfig], MLClient] = {}
_lock = threading.Lock()


def _retry_policy(config: _ClientConfig) -> Any:
    from azure.core.pipeline.policies import RetryPolicy

    class BoundedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
        """azure-core's RetryPolicy, but a server's Retry-After cannot hold the activity longer than the cap."""

        def get_retry_after(self, response: Any) -> float | None:
            retry_after = super().get_retry_after(response)
            return None if retry_after is None else min(float(retry_after), RETRY_AFTER_CAP_SECONDS)

    return BoundedRetryPolicy(
        retry_total=config.retries,
        retry_backoff_factor=config.backoff,
        retry_backoff_max=BACKOFF_CAP_SECONDS,
        timeout=ARM_CALL_TIMEOUT_SECONDS,
    )


def ml_client(workspace: Workspace, env: Mapping[str, str] | None = None) -> MLClient:
    """The process's MLClient of `workspace`, pointed at AML_ARM_ENDPOINT, with the bounded retry policy
    (constructing one makes no request)."""
    config = _ClientConfig.from_env(env)
    key = (workspace.key, config)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            return client
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        # Two retry layers, bounded together:
        # 1. inside one call, azure-core retries 408/429/5xx (GET always; POST only 500/503/504 or when a
        #    Retry-After is sent) `retries` times with capped exponential backoff, Retry-After capped at
        #    RETRY_AFTER_CAP_SECONDS, all within ARM_CALL_TIMEOUT_SECONDS: this absorbs short blips cheaply;
        # 2. what still fails is raised as RetryableComputeError and the orchestration retries the activity
        #    a few times on durable timers (minutes apart, no worker held), see orchestrations/shutdown.py.
        # Worst case per instance: attempts x ARM_CALL_TIMEOUT_SECONDS of activity time plus the timers.
        client = MLClient(
            credential=DefaultAzureCredential(),  # per client: it keeps the token cache of its scope
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.name,
            polling_interval=config.polling_interval,
            retry_policy=_retry_policy(config),
            # After the retry policy: every request on the wire is counted and writes are paced (arm_budget).
            per_retry_policies=[budget_policy(workspace.subscription_id)],
            show_progress=False,
            enable_telemetry=False,
            **_cloud_kwargs(config.endpoint),
        )
        _clients[key] = client
        return client
