"""The host's access keys, as the Functions host models them: the master key, a default function key, and one
system key per extension webhook.

- The **master key** (`DEVHOST_KEY`) is the admin key: it opens every HTTP function, the extension webhooks and
  `/admin/...`, as in Azure (where it is `_master`).
- The **function key** `default` opens the app's `function`-level HTTP functions, nothing else.
- A **system key** opens its own extension's webhook only: `durabletask_extension` the Durable HTTP API,
  `eventgrid_extension` the Event Grid webhook. The status URLs devhost hands out carry the Durable one, as
  Azure's do; devhost's blob relay posts with the Event Grid one, as an Event Grid subscription does.

How a request presents a key and what it may reach follows the host (azure-functions-host
`AuthenticationLevelHandler`, `AuthUtility.PrincipalHasAuthLevelClaim`): the `x-functions-key` header wins over the
`code` query parameter (a present but empty header is no key); a key opens its own level exactly, the master key
every level. The function and system keys are made once and kept in `<data dir>/secrets/host.json` (the shape of
the host's file secrets repository), so URLs handed out stay valid across restarts.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devhost.config import ConfigError

DURABLETASK_EXTENSION = "durabletask_extension"
EVENTGRID_EXTENSION = "eventgrid_extension"
SYSTEM_KEY_NAMES = (DURABLETASK_EXTENSION, EVENTGRID_EXTENSION)
DEFAULT_FUNCTION_KEY = "default"
HEADER = "x-functions-key"
QUERY = "code"


def new_key() -> str:
    # The host's generated keys are 40+ URL-safe characters; 32 random bytes give 43.
    return secrets.token_urlsafe(32)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The key a request presents: the `x-functions-key` header if present (even empty), else `code`."""
    if HEADER in headers:
        return headers[HEADER]
    return query.get(QUERY, "")


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class HostKeys:
    master: str
    function: str
    system: Mapping[str, str]

    @property
    def all_values(self) -> list[str]:
        return [self.master, self.function, *self.system.values()]

    def opens_function(self, given: str) -> bool:
        """A `function`-level HTTP function: the function key or the master key (a system key does not)."""
        return _same(given, self.function) or _same(given, self.master)

    def opens_admin(self, given: str) -> bool:
        return _same(given, self.master)

    def opens_extension(self, given: str, extension: str) -> bool:
        """An extension's webhook: that extension's system key or the master key."""
        return _same(given, self.system[extension]) or _same(given, self.master)

    @classmethod
    def load_or_create(cls, master: str, secrets_file: Path) -> HostKeys:
        """The function and system keys kept in `secrets_file` (made on first use); `master` is DEVHOST_KEY's."""
        stored = _read(secrets_file)
        function = stored.get(("functionKeys", DEFAULT_FUNCTION_KEY)) or new_key()
        system = {name: stored.get(("systemKeys", name)) or new_key() for name in SYSTEM_KEY_NAMES}
        keys = cls(master=master, function=function, system=system)
        if len(stored) != 1 + len(SYSTEM_KEY_NAMES):
            _write(secrets_file, keys)
        return keys


def _read(path: Path) -> dict[tuple[str, str], str]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = {}
        for section in ("functionKeys", "systemKeys"):
            for item in data.get(section, []):
                if isinstance(item.get("value"), str) and item["value"]:
                    found[(section, str(item["name"]))] = item["value"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as err:
        raise ConfigError(
            f"devhost's key file {path} is unreadable ({err}); delete it and devhost makes new keys at the next start"
        ) from None
    return found


def _write(path: Path, keys: HostKeys) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "functionKeys": [{"name": DEFAULT_FUNCTION_KEY, "value": keys.function, "encrypted": False}],
        "systemKeys": [{"name": name, "value": value, "encrypted": False} for name, value in keys.system.items()],
        "source": "devhost",
    }
    tmp = path.with_suffix(".tmp")
    # Owner-only from the first byte: the file holds secrets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    tmp.replace(path)


__all__ = [
    "DEFAULT_FUNCTION_KEY",
    "DURABLETASK_EXTENSION",
    "EVENTGRID_EXTENSION",
    "SYSTEM_KEY_NAMES",
    "HostKeys",
    "presented_key",
]
