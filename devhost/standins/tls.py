"""A local certificate authority (trustme) for the HTTPS stand-ins, and the CA bundle the SDKs are told to trust."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalTls:
    """Server certificate for loopback and *.vault.azure.net, and the CA file clients trust (REQUESTS_CA_BUNDLE)."""

    ca_bundle: Path
    server_context: ssl.SSLContext


def make_local_tls(directory: Path) -> LocalTls:
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    # Vault names too: through devhost's forward proxy the app calls https://<name>.vault.azure.net itself; and the
    # notification sink's *.devhost.invalid (the channels of local.settings.sample.json).
    cert = ca.issue_cert("127.0.0.1", "localhost", "*.vault.azure.net", "*.devhost.invalid")
    ca_bundle = directory / "standin-ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return LocalTls(ca_bundle=ca_bundle, server_context=context)
