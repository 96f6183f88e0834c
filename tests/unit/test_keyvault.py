"""Key Vault references resolved by the real SecretClient + DefaultAzureCredential against stand-ins."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.standins.identity import IdentityStandin
from devhost.standins.keyvault import KeyVaultStandIn
from devhost.standins.proxy import ForwardProxy
from devhost.standins.tls import LocalTls, make_local_tls
from shared import keyvault
from shared.errors import SettingsError
from shared.settings import DATA_STORAGE, use_reference_resolver
from tests.helpers.standins import use_identity_standin

SECRET = "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0LXZhbHVlLTEyMzQ1Ng=="


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(Path(tmp_path_factory.mktemp("kv-tls")))


@pytest.fixture(scope="module")
def identity(tls: LocalTls) -> Iterator[IdentityStandin]:
    with IdentityStandin() as standin, pytest.MonkeyPatch.context() as patch:
        use_identity_standin(patch, standin, tls)
        yield standin


@pytest.fixture(autouse=True, scope="module")
def resolver() -> Iterator[None]:
    keyvault.install()  # what function_app does at start
    yield
    use_reference_resolver(None)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    """devhost's HTTPS proxy: the app calls https://<vault>.vault.azure.net as in Azure, and lands on a stand-in."""
    with ForwardProxy() as forward:
        for name, value in forward.env().items():
            monkeypatch.setenv(name, value)
        yield forward


@pytest.fixture
def vault(tls: LocalTls, identity: IdentityStandin, proxy: ForwardProxy) -> Iterator[KeyVaultStandIn]:
    keyvault.reset_cache()  # a fresh credential and clients per test: no token or value carried over
    with KeyVaultStandIn(tls, token_validator=identity.is_valid) as standin:
        proxy.route(".vault.azure.net", int(standin.url.rsplit(":", 1)[1]))
        yield standin
    keyvault.reset_cache()


def env_for(reference: str, **extra: str) -> dict[str, str]:
    return {"DATA_STORAGE": reference, **extra}


@pytest.mark.parametrize(
    "reference",
    [
        # One vault name each: the SDK remembers a vault's challenge per URL for the life of the process.
        "@Microsoft.KeyVault(SecretUri=https://uri-vault.vault.azure.net/secrets/storage-conn)",
        "@Microsoft.KeyVault(SecretUri=https://slash-vault.vault.azure.net/secrets/storage-conn/)",
        "@Microsoft.KeyVault(VaultName=named-vault;SecretName=storage-conn)",
    ],
)
def test_reference_resolves_to_latest_version(vault: KeyVaultStandIn, identity: IdentityStandin, reference: str):
    vault.set_secret("storage-conn", "old value")
    vault.set_secret("storage-conn", SECRET)
    tokens_before = identity.requests

    assert DATA_STORAGE.get(env_for(reference)) == SECRET
    # The SDK did the challenge dance, then read with a token of the app's managed identity.
    assert vault.stats.challenges == 1
    assert identity.requests == tokens_before + 1
    assert len(vault.stats.tokens) == 1 and identity.is_valid(vault.stats.tokens[0])


@pytest.mark.parametrize(
    "template",
    [
        "@Microsoft.KeyVault(SecretUri=https://appvault.vault.azure.net/secrets/storage-conn/{version})",
        "@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn;SecretVersion={version})",
    ],
)
def test_versioned_reference_resolves_that_version(vault: KeyVaultStandIn, template: str):
    first = vault.set_secret("storage-conn", SECRET)
    vault.set_secret("storage-conn", "newer value")

    assert DATA_STORAGE.get(env_for(template.format(version=first))) == SECRET


def test_missing_secret_names_setting_vault_and_secret(vault: KeyVaultStandIn):
    reference = "@Microsoft.KeyVault(VaultName=appvault;SecretName=nope)"
    with pytest.raises(SettingsError) as caught:
        DATA_STORAGE.get(env_for(reference))
    message = str(caught.value)
    assert "DATA_STORAGE" in message
    assert "'nope'" in message and "'appvault'" in message
    assert "does not exist (404)" in message


def test_forbidden_secret_says_what_to_grant_and_not_the_value(vault: KeyVaultStandIn):
    vault.set_secret("storage-conn", SECRET)
    vault.forbid("storage-conn")
    with pytest.raises(SettingsError) as caught:
        DATA_STORAGE.get(env_for("@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)"))
    message = str(caught.value)
    assert "DATA_STORAGE" in message and "'storage-conn'" in message
    assert "forbidden (403)" in message and "Key Vault Secrets User" in message
    assert SECRET not in message and SECRET not in repr(caught.value.__cause__)


def test_whole_vault_forbidden(vault: KeyVaultStandIn):
    vault.set_secret("storage-conn", SECRET)
    vault.forbid()
    with pytest.raises(SettingsError, match=r"forbidden \(403\)"):
        DATA_STORAGE.get(env_for("@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)"))


def test_unreachable_vault_is_a_clear_error(vault: KeyVaultStandIn, proxy: ForwardProxy):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy.route("gonevault.vault.azure.net", port)
    with pytest.raises(SettingsError) as caught:
        DATA_STORAGE.get(env_for("@Microsoft.KeyVault(VaultName=gonevault;SecretName=storage-conn)"))
    message = str(caught.value)
    assert "DATA_STORAGE" in message and "'gonevault'" in message and "'storage-conn'" in message
    assert "unreachable" in message


def test_vault_url_not_under_vault_domain_is_refused(vault: KeyVaultStandIn):
    # The SDK's challenge check stays on: a vault.azure.net token is never sent to another domain.
    vault.set_secret("storage-conn", SECRET)
    port = vault.url.rsplit(":", 1)[1]
    reference = f"@Microsoft.KeyVault(SecretUri=https://localhost:{port}/secrets/storage-conn)"
    with pytest.raises(SettingsError, match="does not match the requested domain"):
        DATA_STORAGE.get({"DATA_STORAGE": reference})
    assert vault.stats.secret_reads == 0


def test_a_reference_without_an_installed_resolver_is_refused_by_name():
    use_reference_resolver(None)
    try:
        with pytest.raises(SettingsError, match="DATA_STORAGE is a Key Vault reference, but no resolver"):
            DATA_STORAGE.get(env_for("@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)"))
    finally:
        keyvault.install()


def test_value_is_cached_until_refresh_time_then_reread(vault: KeyVaultStandIn):
    vault.set_secret("storage-conn", SECRET)
    env = env_for("@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)", KEYVAULT_REFRESH_SECONDS="1")
    assert DATA_STORAGE.get(env) == SECRET
    vault.set_secret("storage-conn", "rotated value")
    assert DATA_STORAGE.get(env) == SECRET
    assert vault.stats.secret_reads == 1

    time.sleep(1.1)
    assert DATA_STORAGE.get(env) == "rotated value"
    assert vault.stats.secret_reads == 2


def test_no_secret_value_in_debug_logs(vault: KeyVaultStandIn, caplog: pytest.LogCaptureFixture):
    vault.set_secret("storage-conn", SECRET)
    env = env_for("@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)")
    with caplog.at_level(logging.DEBUG):
        assert DATA_STORAGE.get(env) == SECRET
        logging.getLogger("tests.careless").warning("connecting with %s", SECRET)
    assert any(r.name.startswith("azure") for r in caplog.records)  # the SDK did log at DEBUG
    assert SECRET not in caplog.text
    assert "connecting with <redacted>" in caplog.text


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("@Microsoft.KeyVault(SecretUri=http://appvault.vault.azure.net/secrets/x)", "not an https URL"),
        ("@Microsoft.KeyVault(SecretUri=https://appvault.vault.azure.net/keys/x)", "/secrets/NAME"),
        ("@Microsoft.KeyVault(VaultName=appvault)", "expected SecretUri=... or VaultName="),
        ("@Microsoft.KeyVault(VaultName=appvault;SecretName=a/b)", "not a Key Vault secret name"),
        ("@Microsoft.KeyVault(VaultName=appvault;SecretName=x", "expected @Microsoft.KeyVault(...)"),
        ("@Microsoft.KeyVault(SecretName)", "expected KEY=VALUE"),
    ],
)
def test_malformed_reference_names_setting_and_what_is_expected(reference: str, expected: str):
    with pytest.raises(SettingsError) as caught:
        DATA_STORAGE.get({"DATA_STORAGE": reference})
    assert "DATA_STORAGE" in str(caught.value)
    assert expected in str(caught.value)


def test_refresh_setting_cannot_itself_be_a_reference():
    env = {
        "KEYVAULT_REFRESH_SECONDS": "@Microsoft.KeyVault(VaultName=appvault;SecretName=refresh)",
        "DATA_STORAGE": "@Microsoft.KeyVault(VaultName=appvault;SecretName=storage-conn)",
    }
    with pytest.raises(SettingsError, match="KEYVAULT_REFRESH_SECONDS cannot itself be a Key Vault reference"):
        DATA_STORAGE.get(env)
