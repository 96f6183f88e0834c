"""Starts the loopback stand-ins a settings file asks for and points the app's settings at them.

- `DEVHOST_ARM_FLEET` (a fleet JSON file): an App Service-style managed-identity endpoint and an HTTPS stand-in of
  the Azure Resource Manager compute API seeded from the file, so the app's real `MLClient` runs end to end.
  `DEVHOST_ARM_THROTTLE` = `arm` (default) enforces ARM's request buckets per subscription, `off` disables them;
  `DEVHOST_ARM_PAGE_SIZE` sets the list page size.
  With it, a stand-in of the Azure Retail Prices API (savings estimates) unless PRICES_ENDPOINT is set.
- `DEVHOST_KEYVAULT_SECRETS` (JSON object name -> value): an HTTPS Key Vault stand-in holding those secrets, so a
  setting may be a `@Microsoft.KeyVault(...)` reference locally, as in Azure.
- `DEVHOST_NOTIFY_SINK=on`: the notification stand-in (webhooks, Teams, Slack, ACS Email) at https://*.devhost.invalid,
  recording what the heads-up would have sent.

Stand-ins reached by a host name (Key Vault, the notification sink) sit behind one loopback HTTPS proxy (HTTPS_PROXY).

Settings already pointing elsewhere (a real vault, a real ARM endpoint) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devhost.config import APP_ROOT, ConfigError
from devhost.settings import (
    DEVHOST_ARM_FLEET,
    DEVHOST_ARM_PAGE_SIZE,
    DEVHOST_ARM_THROTTLE,
    DEVHOST_ARM_TRANSITION_SECONDS,
    DEVHOST_KEYVAULT_SECRETS,
    DEVHOST_NOTIFY_SINK,
)

if TYPE_CHECKING:  # the stand-ins are imported only when a setting asks for them
    from devhost.standins.identity import IdentityStandin
    from devhost.standins.notify import NotifySink
    from devhost.standins.tls import LocalTls

log = logging.getLogger(__name__)


class _Named:
    """A started stand-in with a line for the start-up banner."""

    def __init__(self, label: str, target: Any):
        self.label = label
        self.target = target

    def stop(self) -> None:
        self.target.stop()

    def __str__(self) -> str:
        return self.label


def _combined_bundle(env: MutableMapping[str, str], local_ca: Path, target: Path) -> Path:
    """The CAs requests already trusts plus the stand-ins' local CA: the SDKs (requests) read REQUESTS_CA_BUNDLE,
    and a real vault or ARM endpoint used beside the stand-ins must stay trusted."""
    import certifi

    existing = Path(env.get("REQUESTS_CA_BUNDLE") or certifi.where())
    base = existing.read_text() if existing.exists() and existing != target else Path(certifi.where()).read_text()
    target.write_text(base.rstrip("\n") + "\n" + local_ca.read_text())
    return target


def start_standins(env: MutableMapping[str, str], state_dir: Path) -> list[Any]:
    fleet_setting = DEVHOST_ARM_FLEET.get(env)
    secrets_setting = DEVHOST_KEYVAULT_SECRETS.raw(env).strip()
    sink_on = DEVHOST_NOTIFY_SINK.get(env) == "on"
    if not fleet_setting and not secrets_setting and not sink_on:
        return []
    # Check the settings before anything starts, so a bad one leaves no stand-in running.
    fleet = _fleet_path(fleet_setting)
    throttle = DEVHOST_ARM_THROTTLE.get(env)
    transition = DEVHOST_ARM_TRANSITION_SECONDS.get(env)
    page_size = DEVHOST_ARM_PAGE_SIZE.get(env)
    secrets = DEVHOST_KEYVAULT_SECRETS.get(env)

    from devhost.standins.identity import IdentityStandin
    from devhost.standins.tls import make_local_tls

    started: list[Any] = []
    tls = make_local_tls(state_dir / "tls")
    identity = IdentityStandin()
    identity.start()
    started.append(_Named(f"managed identity endpoint {identity.endpoint}", identity))
    for name, value in identity.env().items():
        env.setdefault(name, value)
    env["REQUESTS_CA_BUNDLE"] = str(_combined_bundle(env, tls.ca_bundle, state_dir / "tls" / "ca-bundle.pem"))
    if fleet is not None:
        started.extend(_start_arm(env, fleet, tls, identity, throttle, transition, page_size))
    routes: dict[str, int] = {}
    if secrets_setting:
        started.extend(_start_vault(secrets, tls, identity, routes))
    if sink_on:
        started.append(_start_sink(tls, identity, routes))
    if routes:
        started.append(_start_proxy(env, routes))
    return started


def notify_sink(started: list[Any]) -> NotifySink | None:
    """The notification sink among the started stand-ins (devhost shows what it recorded)."""
    from devhost.standins.notify import NotifySink

    return next((s.target for s in started if isinstance(getattr(s, "target", None), NotifySink)), None)


def _fleet_path(setting: str) -> Path | None:
    """DEVHOST_ARM_FLEET as a path (relative to the app's root), checked to exist."""
    if not setting:
        return None
    fleet = Path(setting)
    if not fleet.is_absolute():
        fleet = APP_ROOT / fleet
    if not fleet.exists():
        raise ConfigError(f"DEVHOST_ARM_FLEET names {fleet}, which does not exist")
    return fleet


def _start_arm(
    env: MutableMapping[str, str],
    fleet: Path,
    tls: LocalTls,
    identity: IdentityStandin,
    throttle: str,
    transition: float,
    page_size: int,
) -> list[_Named]:
    """The ARM stand-in seeded from `fleet` and, unless PRICES_ENDPOINT is set, the Retail Prices stand-in."""
    from devhost.standins.arm import ArmStandin

    started: list[_Named] = []
    arm = ArmStandin(
        fleet,
        tls,
        transition_seconds=transition,
        token_validator=identity.is_valid,
        throttle=throttle,
        page_size=page_size,
    )
    url = arm.start()
    env.setdefault("AML_ARM_ENDPOINT", url + "/")
    label = (
        f"Azure Resource Manager (Azure ML computes) {url} from {fleet.name}, throttle {throttle}, {page_size} per page"
    )
    started.append(_Named(label, arm))
    if not env.get("PRICES_ENDPOINT", "").strip():
        from devhost.standins.prices import PricesStandin

        prices = PricesStandin()
        env["PRICES_ENDPOINT"] = prices.start()
        started.append(_Named(f"Azure Retail Prices API {prices.url}", prices))
    return started


def _start_vault(
    secrets: dict[str, Any], tls: LocalTls, identity: IdentityStandin, routes: dict[str, int]
) -> list[_Named]:
    """The Key Vault stand-in holding `secrets`; the proxy brings *.vault.azure.net to it."""
    from devhost.standins.keyvault import KeyVaultStandIn

    vault = KeyVaultStandIn(tls, token_validator=identity.is_valid)
    vault.start()
    for name, value in secrets.items():
        vault.set_secret(str(name), str(value))
    # The app keeps calling https://<vault>.vault.azure.net, with every SDK check on; the proxy brings it here.
    routes[".vault.azure.net"] = int(vault.url.rsplit(":", 1)[1])
    return [_Named(f"Key Vault {vault.url} ({len(secrets)} secrets)", vault)]


def _start_sink(tls: LocalTls, identity: IdentityStandin, routes: dict[str, int]) -> _Named:
    """The notification sink; the proxy brings https://<any>.devhost.invalid (the sample's channels) to it."""
    from devhost.standins.notify import HOST_SUFFIX, NotifySink

    sink = NotifySink(tls, token_validator=identity.is_valid)
    sink.start()
    routes[HOST_SUFFIX] = sink.port
    return _Named(f"notification sink {sink.url} (https://*{HOST_SUFFIX}; see /devhost/notifications)", sink)


def _start_proxy(env: MutableMapping[str, str], routes: dict[str, int]) -> _Named:
    from devhost.standins.proxy import ForwardProxy

    proxy = ForwardProxy(routes).start()
    env.update(proxy.env(env.get("NO_PROXY", "") or env.get("no_proxy", "")))
    names = ", ".join(f"*{suffix}" for suffix in sorted(routes))
    return _Named(f"HTTPS proxy {proxy.url}: {names} -> the stand-ins", proxy)
