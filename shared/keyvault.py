"""Resolves `@Microsoft.KeyVault(...)` values the platform left unresolved, with the real SecretClient.

Values are cached per (vault, secret, version) for KEYVAULT_REFRESH_SECONDS; an unresolvable reference raises
SettingsError naming the setting and the vault/secret. Resolved values are redacted from log records.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from shared.errors import SettingsError
from shared.settings import (
    KEYVAULT_REFERENCE_PREFIX,
    KEYVAULT_REFRESH_SECONDS,
    Setting,
    use_reference_resolver,
)

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

logger = logging.getLogger(__name__)

AZURE_VAULT_URL = "https://{vault}.vault.azure.net"
REDACTED = "<redacted>"

# Names as Key Vault accepts them; checking them keeps a malformed reference from becoming an odd URL.
_VAULT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,23}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,127}$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")


@dataclass(frozen=True)
class KeyVaultReference:
    """One parsed reference: which secret (and version) of which vault, and the URL the client calls."""

    vault: str
    name: str
    version: str | None
    vault_url: str

    def describe(self) -> str:
        version = f" version {self.version}" if self.version else " (latest version)"
        return f"secret '{self.name}'{version} in Key Vault '{self.vault}' ({self.vault_url})"


def parse_reference(setting_name: str, reference: str) -> KeyVaultReference:
    """Parse both App Service syntaxes."""
    text = reference.strip()
    if not (text.startswith(KEYVAULT_REFERENCE_PREFIX) and text.endswith(")")):
        raise _malformed(setting_name, reference, "expected @Microsoft.KeyVault(...)")
    body = text[len(KEYVAULT_REFERENCE_PREFIX) : -1].strip()
    fields: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise _malformed(setting_name, reference, f"expected KEY=VALUE, got {part.strip()!r}")
        fields[key.strip().lower()] = value.strip()

    if "secreturi" in fields:
        if len(fields) > 1:
            raise _malformed(setting_name, reference, "SecretUri cannot be combined with other fields")
        vault, name, version, own_url = _parse_secret_uri(setting_name, reference, fields["secreturi"])
    elif {"vaultname", "secretname"} <= fields.keys() <= {"vaultname", "secretname", "secretversion"}:
        vault, name, version = fields["vaultname"], fields["secretname"], fields.get("secretversion")
        own_url = AZURE_VAULT_URL.format(vault=vault)
    else:
        raise _malformed(
            setting_name,
            reference,
            "expected SecretUri=... or VaultName=...;SecretName=...[;SecretVersion=...]",
        )

    if not _VAULT_NAME_RE.match(vault):
        raise _malformed(setting_name, reference, f"vault name {vault!r} is not a Key Vault name")
    if not _SECRET_NAME_RE.match(name):
        raise _malformed(setting_name, reference, f"secret name {name!r} is not a Key Vault secret name")
    if version is not None and not _VERSION_RE.match(version):
        raise _malformed(setting_name, reference, f"secret version {version!r} is not a Key Vault version")
    return KeyVaultReference(vault=vault, name=name, version=version, vault_url=own_url)


def _parse_secret_uri(setting_name: str, reference: str, uri: str) -> tuple[str, str, str | None, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "https" or not parsed.hostname:
        raise _malformed(setting_name, reference, f"SecretUri {uri!r} is not an https URL")
    path = [p for p in parsed.path.split("/") if p]
    if len(path) not in (2, 3) or path[0] != "secrets":
        raise _malformed(setting_name, reference, f"SecretUri {uri!r} is not .../secrets/NAME[/VERSION]")
    vault = parsed.hostname.split(".")[0]
    return vault, path[1], path[2] if len(path) == 3 else None, f"https://{parsed.netloc}"


def _malformed(setting_name: str, reference: str, expected: str) -> SettingsError:
    # A reference names a vault and a secret, never the secret's value: showing it helps and leaks nothing.
    return SettingsError(f"setting {setting_name} holds a malformed Key Vault reference {reference!r}: {expected}")


@dataclass
class _Cached:
    value: str
    fetched_at: float


_lock = threading.Lock()
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_cache: dict[tuple[str, str, str], _Cached] = {}
_clients: dict[str, SecretClient] = {}


class _State:
    credential: Any = None
    factory_installed = False
    # Replaced, never mutated, so log records made on other threads can iterate it without a lock.
    secret_values: frozenset[str] = frozenset()


def resolve_reference(setting_name: str, reference: str, env: Mapping[str, str]) -> str:
    """The secret a setting's Key Vault reference points to, from the cache while it is fresh."""
    refresh_seconds = _plain(KEYVAULT_REFRESH_SECONDS, env)
    ref = parse_reference(setting_name, reference)
    key = (ref.vault_url, ref.name, ref.version or "")
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    # One fetch per secret at a time: concurrent first uses wait for it instead of all calling the vault.
    with key_lock:
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached.fetched_at < refresh_seconds:
            return cached.value
        value = _fetch(setting_name, ref)
        with _lock:
            _cache[key] = _Cached(value, time.monotonic())
            # Very short values ("1", "true") would garble every log line and are not worth hiding.
            if len(value) >= 6:
                _State.secret_values = _State.secret_values | {value}
        _install_redaction()
        return value


def reset_cache() -> None:
    """Forget cached values, clients and the credential (tests, or after the identity changed)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _cache.clear()
        _key_locks.clear()
        if _State.credential is not None:
            _State.credential.close()
        _State.credential = None


def redact(text: str) -> str:
    """`text` with every secret value resolved so far replaced by <redacted>."""
    for value in _State.secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _plain(setting: Setting[Any], env: Mapping[str, str]) -> Any:
    # These settings steer resolution itself, so they must not be references (that would recurse).
    value = env.get(setting.name)
    if value is not None and value.strip().startswith(KEYVAULT_REFERENCE_PREFIX):
        raise SettingsError(f"setting {setting.name} cannot itself be a Key Vault reference")
    return setting.get({setting.name: value} if value is not None else {})


def _client(vault_url: str) -> SecretClient:
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    with _lock:
        if _State.credential is None:
            # Reads IDENTITY_ENDPOINT/IDENTITY_HEADER (App Service, devhost) or AZURE_* from the process env.
            _State.credential = DefaultAzureCredential()
        client = _clients.get(vault_url)
        if client is None:
            # The SDK's challenge-resource check stays on: a token for vault.azure.net only goes to that domain.
            client = SecretClient(vault_url, _State.credential)
            _clients[vault_url] = client
        return client


def _fetch(setting_name: str, ref: KeyVaultReference) -> str:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    where = f"setting {setting_name}: Key Vault reference to {ref.describe()}"
    try:
        secret = _client(ref.vault_url).get_secret(ref.name, ref.version)
    except ResourceNotFoundError as err:
        raise SettingsError(f"{where} cannot be resolved: the secret does not exist (404)") from err
    except ClientAuthenticationError as err:
        raise SettingsError(
            f"{where} cannot be resolved: no token for the vault (is a managed identity assigned?); {_first_line(err)}"
        ) from err
    except HttpResponseError as err:
        if err.status_code == 403:
            raise SettingsError(
                f"{where} cannot be resolved: access forbidden (403); grant the app's identity the "
                "'Key Vault Secrets User' role or a get-secret access policy"
            ) from err
        raise SettingsError(f"{where} cannot be resolved: HTTP {err.status_code} {_first_line(err)}") from err
    except ServiceRequestError as err:
        raise SettingsError(f"{where} cannot be resolved: the vault is unreachable ({_first_line(err)})") from err
    except ValueError as err:  # the SDK's challenge checks (resource domain, TLS)
        raise SettingsError(f"{where} cannot be resolved: {err}") from err
    logger.info("resolved %s for setting %s", ref.describe(), setting_name)
    return secret.value or ""


def _first_line(err: Exception) -> str:
    message = str(getattr(err, "message", None) or err)
    return message.strip().splitlines()[0] if message.strip() else type(err).__name__


def _install_redaction() -> None:
    """Chain a log record factory that redacts resolved secret values from every message, once."""
    with _lock:
        if _State.factory_installed:
            return
        _State.factory_installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _State.secret_values:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string is the handler's to report, not ours
                return record
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return record

    logging.setLogRecordFactory(factory)


def install() -> None:
    """Make this module the settings' resolver of Key Vault references (called by the composition root)."""
    use_reference_resolver(resolve_reference)
