"""Hourly prices of compute instance VM sizes: `PRICE_OVERRIDES` (negotiated rates), else the public Azure Retail
Prices API (no auth; Linux, consumption, primary meter), cached per process. Savings estimates use them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import SettingsError
from shared.payloads import Payload
from shared.settings import PRICE_OVERRIDES, PRICES_CURRENCY, PRICES_ENDPOINT, PRICES_REGION

log = logging.getLogger(__name__)

API_VERSION = "2023-01-01-preview"
TIMEOUT_SECONDS = 10.0
MAX_PAGES = 5


@dataclass(frozen=True)
class Price(Payload):
    vm_size: str
    hourly_price: float
    currency: str
    price_source: str  # "retail" | "override"


def parse_overrides(text: str) -> dict[str, float]:
    """PRICE_OVERRIDES: a JSON object vmSize -> hourly price (>= 0); keys compared case-insensitively."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SettingsError(
            f"setting PRICE_OVERRIDES is not valid JSON ({err.msg}): expected an object "
            'vmSize -> hourly price, e.g. {"Standard_DS3_v2": 0.21}'
        ) from None
    if not isinstance(data, dict):
        raise SettingsError("setting PRICE_OVERRIDES must be a JSON object vmSize -> hourly price")
    out: dict[str, float] = {}
    for size, price in data.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or not price >= 0:
            raise SettingsError(f"setting PRICE_OVERRIDES: the price of {size!r} must be a number >= 0, got {price!r}")
        out[str(size).lower()] = float(price)
    return out


def sku_name(vm_size: str) -> str:
    """ARM reports `STANDARD_DS3_V2`; the prices API filters case-sensitively on `Standard_DS3_v2`.

    Azure's naming: family letters upper case, then the size number, then feature letters lower case
    (`E4ds`, `NC6s`), `_v5` lower case, other parts (`A100`) upper case.
    """
    parts = vm_size.strip().split("_")
    if parts and parts[0].lower() in ("standard", "basic"):
        head, parts = parts[0].capitalize(), parts[1:]
    else:
        head = "Standard"
    out = []
    for index, part in enumerate(parts):
        match = re.fullmatch(r"([A-Za-z]+)(\d+)([A-Za-z-]*)", part)
        if re.fullmatch(r"[vV]\d+", part):
            out.append(part.lower())
        elif index == 0 and match:
            out.append(match[1].upper() + match[2] + match[3].lower())
        else:
            out.append(part.upper())
    return "_".join([head, *out])


_cache: dict[tuple[str, str, str, str], float | None] = {}
_cache_lock = threading.Lock()


def _choose(items: Iterable[Mapping[str, Any]]) -> float | None:
    """The Linux, pay-as-you-go, per-hour price (Windows, Spot and Low Priority meters left out)."""
    candidates = []
    for item in items:
        product = str(item.get("productName", ""))
        sku = str(item.get("skuName", ""))
        if "windows" in product.lower() or "spot" in sku.lower() or "low priority" in sku.lower():
            continue
        if item.get("type", "Consumption") != "Consumption" or item.get("unitOfMeasure", "1 Hour") != "1 Hour":
            continue
        candidates.append(item)
    if not candidates:
        return None
    primary = [c for c in candidates if c.get("isPrimaryMeterRegion", True)] or candidates
    return float(primary[0]["retailPrice"])


def _fetch(endpoint: str, region: str, currency: str, sku: str) -> float | None:
    query = (
        f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and armSkuName eq '{sku}' "
        "and priceType eq 'Consumption'"
    )
    url: str | None = (
        f"{endpoint}?api-version={API_VERSION}&currencyCode={urllib.parse.quote(currency)}"
        f"&$filter={urllib.parse.quote(query)}"
    )
    items: list[Mapping[str, Any]] = []
    for _ in range(MAX_PAGES):
        if not url:
            break
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            page = json.loads(response.read())
        items.extend(page.get("Items") or [])
        url = page.get("NextPageLink")
    return _choose(items)


def prices(vm_sizes: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, Price | str]:
    """Price of each VM size, or a message saying why there is none (the report shows it; nothing fails)."""
    overrides = parse_overrides(PRICE_OVERRIDES.get(env))
    endpoint = PRICES_ENDPOINT.get(env).rstrip("/")
    region, currency = PRICES_REGION.get(env), PRICES_CURRENCY.get(env)
    out: dict[str, Price | str] = {}
    for size in sorted(set(vm_sizes)):
        if size.lower() in overrides:
            out[size] = Price(size, overrides[size.lower()], currency, "override")
            continue
        sku = sku_name(size)
        key = (endpoint, region, currency, sku.lower())
        with _cache_lock:
            cached = _cache.get(key, ...)
        if cached is ...:
            try:
                cached = _fetch(endpoint, region, currency, sku)
            except (OSError, ValueError) as err:
                log.warning("retail price of %s in %s not read: %s", sku, region, err)
                out[size] = f"retail price of {sku} not read: {err}"
                continue
            with _cache_lock:
                _cache[key] = cached
        if cached is None:
            out[size] = f"no Linux pay-as-you-go retail price for {sku} in {region}"
        else:
            out[size] = Price(size, float(cached), currency, "retail")
    return out
