"""Pointing the real Azure SDKs at the stand-ins: managed identity, TLS trust and ARM, in this process (unit tests)
or in a devhost's settings (integration tests)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devhost.standins.arm import ArmStandin, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import LocalTls

# Sources DefaultAzureCredential tries before managed identity: any of them left in the environment (a developer's
# own login, a CI secret) would answer first, and the test would not be talking to the stand-in.
CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZUREML_CURRENT_CLOUD",
)


def use_identity_standin(patch: pytest.MonkeyPatch, identity: IdentityStandin, tls: LocalTls) -> None:
    """This process's DefaultAzureCredential gets its tokens from `identity` and trusts the stand-ins' CA."""
    for name in CREDENTIAL_VARIABLES:
        patch.delenv(name, raising=False)
    for name, value in identity.env().items():
        patch.setenv(name, value)  # DefaultAzureCredential reads the process env
    # The requests transport of azure-core trusts REQUESTS_CA_BUNDLE (not SSL_CERT_FILE).
    patch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))


def ca_bundle_with(tls: LocalTls, path: Path) -> Path:
    """certifi's CAs plus the stand-ins' CA at `path`: a host given it trusts the stand-ins and still trusts real
    endpoints (the public prices API, for one)."""
    import certifi

    path.write_text(Path(certifi.where()).read_text().rstrip("\n") + "\n" + tls.ca_bundle.read_text())
    return path


def compute_settings(
    identity: IdentityStandin, arm: ArmStandin, fleet: Mapping[str, Any], ca_bundle: Path
) -> dict[str, str]:
    """The app settings that send the app's compute calls to the stand-ins: its managed identity, the fleet's
    workspaces on the ARM stand-in, and a CA bundle that trusts them."""
    return {
        **identity.env(),
        "AML_WORKSPACES": ",".join(workspace_keys(fleet)),
        "AML_ARM_ENDPOINT": arm.base_url + "/",
        "REQUESTS_CA_BUNDLE": str(ca_bundle),
    }


def stop_times(arm: ArmStandin) -> dict[str, list[float]]:
    """Each instance's stop POSTs as the ARM stand-in received them (its monotonic clock), in order."""
    out: dict[str, list[float]] = {}
    for r in arm.requests("POST", r"/stop$"):
        out.setdefault(r.path.rsplit("/", 2)[-2], []).append(r.at)
    return out


def on_standin_clock(moment: datetime) -> float:
    """`moment` on this process's monotonic clock, which the ARM stand-in stamps its requests with."""
    return time.monotonic() + (moment - datetime.now(UTC)).total_seconds()
