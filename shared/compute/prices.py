"""Hourly prices of compute instance VM sizes: `PRICE_OVERRIDES` (negotiated rates), else the public Azure Retail
Prices API (no auth; Linux, consumption, primary meter), cached per process. Savings estimates use them.

Whatever the API or the setting says, a price that leaves here is a finite number from 0 to `MAX_HOURLY_PRICE`
(a NaN or an infinity would make every report and `/api/savings` invalid JSON), and a size without one gets a
sentence saying why. The API is asked for all sizes at once within `BUDGET_SECONDS`, its pages are followed only
on its own origin, and what it could not answer is remembered for `FAILED_TTL_SECONDS`: a slow or broken API
delays a run by seconds, once in a while, not by ten seconds per VM size on every run.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from shared.errors import SettingsError
from shared.payloads import Payload
from shared.settings import PRICE_OVERRIDES, PRICES_CURRENCY, PRICES_ENDPOINT, PRICES_REGION

log = logging.getLogger(__name__)

API_VERSION = "2023-01-01-preview"
REQUEST_TIMEOUT_SECONDS = 5.0  # one request (each socket operation) to the prices API
BUDGET_SECONDS = 8.0  # every size of one call together: the most a slow API adds to a run
MAX_PAGES = 5
PARALLEL_REQUESTS = 4
FOUND_TTL_SECONDS = 12 * 3600.0  # retail prices change monthly at most
FAILED_TTL_SECONDS = 10 * 60.0  # an API that failed is asked again after this, not on every run
MAX_HOURLY_PRICE = 10_000_000.0  # above any VM's hourly price in any billing currency (KRW, JPY included)
_ANSWER_BYTES = 8 * 1024 * 1024  # a page of the real API is ~100 KB


@dataclass(frozen=True)
class Price(Payload):
    vm_size: str
    hourly_price: float
    currency: str
    price_source: str  # "retail" | "override"


class PriceAnswerError(ValueError):
    """The prices API answered something that is not a usable price list."""


def _hourly(value: Any) -> float | None:
    """`value` as an hourly price, or None when it is not a finite number from 0 to MAX_HOURLY_PRICE."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        price = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return price if math.isfinite(price) and 0 <= price <= MAX_HOURLY_PRICE else None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_overrides(text: str) -> dict[str, float]:
    """PRICE_OVERRIDES: a JSON object vmSize -> hourly price; keys compared case-insensitively.

    Only SettingsError naming the setting comes out of here, whatever the text (NaN, Infinity, 1e400, an integer
    of 5,000 digits): the activity reports it and the run goes on.
    """
    if not text.strip():
        return {}
    example = 'expected a JSON object vmSize -> hourly price, e.g. {"Standard_DS3_v2": 0.21}'
    try:
        # Numbers as floats: an integer of thousands of digits is then inf (refused below), not a ValueError of
        # Python's digit limit; NaN and Infinity are not JSON.
        data = json.loads(text, parse_int=float, parse_float=float, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        raise SettingsError(f"setting PRICE_OVERRIDES is not valid JSON ({err.msg}): {example}") from None
    except (ValueError, RecursionError) as err:
        raise SettingsError(f"setting PRICE_OVERRIDES is not valid JSON ({err}): {example}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"setting PRICE_OVERRIDES must be a JSON object: {example}")
    out: dict[str, float] = {}
    for size, price in data.items():
        hourly = _hourly(price)
        if hourly is None:
            shown = repr(price) if len(repr(price)) <= 40 else repr(price)[:40] + "..."
            raise SettingsError(
                f"setting PRICE_OVERRIDES: the price of {size!r} must be a number from 0 to {MAX_HOURLY_PRICE:.0f} "
                f"(an hourly price), got {shown}"
            )
        out[str(size).lower()] = hourly
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


# --- the retail prices API ----------------------------------------------------------------------------------


def _opener() -> urllib.request.OpenerDirector:
    """HTTP(S) only, no redirects: urllib's default opener also reads file:// and ftp:// URLs and follows
    redirects to other hosts; an answer of the prices API must come from the prices API."""
    opener = urllib.request.OpenerDirector()
    handlers = (
        urllib.request.HTTPHandler,
        urllib.request.HTTPSHandler,
        urllib.request.HTTPDefaultErrorHandler,
        urllib.request.HTTPErrorProcessor,
    )
    for handler in handlers:
        opener.add_handler(handler())
    return opener


_OPENER = _opener()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def _next_page(link: Any, endpoint: str) -> str | None:
    """The next page's URL, followed only on the configured endpoint's own origin (https for the real API)."""
    if link in (None, ""):
        return None
    if not isinstance(link, str) or _origin(link) != _origin(endpoint) or _origin(link)[0] not in ("https", "http"):
        raise PriceAnswerError(
            f"the prices API gave a NextPageLink off its own origin ({str(link)[:80]!r}): not followed"
        )
    return link


def _describe(data: Any) -> str:
    kind = {list: "a JSON array", dict: "an object", type(None): "null", str: "a string"}.get(type(data), "a number")
    if isinstance(data, dict):
        keys = ", ".join(sorted(str(k) for k in data)[:5])
        return f"{kind} without 'Items' (keys: {keys or 'none'})"
    return kind


def _page(body: bytes) -> tuple[list[Mapping[str, Any]], Any]:
    """One answer of the API: its items and its NextPageLink; PriceAnswerError unless it is a price list."""
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; so is a 5,000-digit number
        raise PriceAnswerError(f"the prices API answered something that is not JSON ({str(err)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
        raise PriceAnswerError(f"the prices API answered {_describe(data)}, not a price list with 'Items'")
    return [item for item in data["Items"] if isinstance(item, dict)], data.get("NextPageLink")


def _choose(items: Iterable[Mapping[str, Any]], sku: str) -> float | None:
    """The Linux, pay-as-you-go, per-hour price (Windows, Spot and Low Priority meters left out)."""
    candidates = []
    for item in items:
        product = str(item.get("productName", ""))
        name = str(item.get("skuName", ""))
        if "windows" in product.lower() or "spot" in name.lower() or "low priority" in name.lower():
            continue
        if item.get("type", "Consumption") != "Consumption" or item.get("unitOfMeasure", "1 Hour") != "1 Hour":
            continue
        candidates.append(item)
    if not candidates:
        return None
    primary = [c for c in candidates if c.get("isPrimaryMeterRegion", True)] or candidates
    raw = primary[0].get("retailPrice")
    hourly = _hourly(raw)
    if hourly is None:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:40] + "..."
        raise PriceAnswerError(
            f"the prices API answered a retailPrice of {shown} for {sku}: expected a number from 0 to "
            f"{MAX_HOURLY_PRICE:.0f} an hour"
        )
    return hourly


def _fetch(endpoint: str, region: str, currency: str, sku: str, deadline: float) -> float | None:
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
        timeout = min(REQUEST_TIMEOUT_SECONDS, deadline - time.monotonic())
        if timeout <= 0:
            raise TimeoutError(f"the prices API did not answer within {BUDGET_SECONDS:g} s")
        with _OPENER.open(url, timeout=timeout) as response:
            body = response.read(_ANSWER_BYTES + 1)
        if len(body) > _ANSWER_BYTES:
            raise PriceAnswerError(f"the prices API answered more than {_ANSWER_BYTES} bytes for one page")
        page, link = _page(body)
        items.extend(page)
        url = _next_page(link, endpoint)
    return _choose(items, sku)


# --- the cache ----------------------------------------------------------------------------------------------

Key = tuple[str, str, str, str]
_cache: dict[Key, tuple[float | str | None, float]] = {}  # key -> (price, None: no price, or why not; expiry)
_cache_lock = threading.Lock()


def _cached(key: Key) -> tuple[bool, float | str | None]:
    """(whether the cache holds `key`, what it holds)."""
    with _cache_lock:
        value, expires = _cache.get(key, (None, 0.0))
    return time.monotonic() < expires, value


def _remember(key: Key, value: float | str | None) -> None:
    ttl = FAILED_TTL_SECONDS if isinstance(value, str) else FOUND_TTL_SECONDS
    with _cache_lock:
        _cache[key] = (value, time.monotonic() + ttl)


def _ask(endpoint: str, region: str, currency: str, sku: str, deadline: float) -> float | str | None:
    """The price, None when the API lists none, or why it could not be read (remembered either way)."""
    key = (endpoint, region, currency, sku.lower())
    try:
        value: float | str | None = _fetch(endpoint, region, currency, sku, deadline)
    except (OSError, ValueError) as err:  # URLError, HTTPError and timeouts are OSErrors
        why = str(err)
        if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            why = f"the prices API did not answer within {BUDGET_SECONDS:g} s"
        log.warning("retail price of %s in %s not read: %s", sku, region, why)
        value = f"retail price of {sku} not read: {why}"
    _remember(key, value)
    return value


def _retail(endpoint: str, region: str, currency: str, skus: Iterable[str]) -> dict[str, float | str | None]:
    """Each SKU's price from the cache or the API, all asked at once and waited for `BUDGET_SECONDS` at most."""
    found: dict[str, float | str | None] = {}
    missing: list[str] = []
    for sku in skus:
        held, value = _cached((endpoint, region, currency, sku.lower()))
        if held:
            found[sku] = value
        else:
            missing.append(sku)
    if not missing:
        return found
    deadline = time.monotonic() + BUDGET_SECONDS
    pool = ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(missing)), thread_name_prefix="prices")
    futures = {sku: pool.submit(_ask, endpoint, region, currency, sku, deadline) for sku in missing}
    wait(futures.values(), timeout=BUDGET_SECONDS + 1)
    pool.shutdown(wait=False, cancel_futures=True)
    for sku, future in futures.items():
        if future.done() and not future.cancelled():
            found[sku] = future.result()
        else:  # never started, or still reading: the API is too slow for this run
            found[sku] = f"retail price of {sku} not read: the prices API did not answer within {BUDGET_SECONDS:g} s"
            _remember((endpoint, region, currency, sku.lower()), found[sku])
    return found


def prices(vm_sizes: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, Price | str]:
    """Price of each VM size, or a message saying why there is none (the report shows it; nothing fails).

    SettingsError (naming PRICE_OVERRIDES) when the overrides cannot be read.
    """
    overrides = parse_overrides(PRICE_OVERRIDES.get(env))
    endpoint = PRICES_ENDPOINT.get(env).rstrip("/")
    region, currency = PRICES_REGION.get(env), PRICES_CURRENCY.get(env)
    sizes = sorted(set(vm_sizes))
    retail = _retail(endpoint, region, currency, sorted({sku_name(s) for s in sizes if s.lower() not in overrides}))
    out: dict[str, Price | str] = {}
    for size in sizes:
        if size.lower() in overrides:
            out[size] = Price(size, overrides[size.lower()], currency, "override")
            continue
        sku = sku_name(size)
        value = retail[sku]
        if value is None:
            out[size] = f"no Linux pay-as-you-go retail price for {sku} in {region}"
        elif isinstance(value, str):
            out[size] = value
        else:
            out[size] = Price(size, value, currency, "retail")
    return out
