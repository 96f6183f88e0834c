"""Loopback stand-in of the Azure Retail Prices API (`GET /api/retail/prices?$filter=...`), no auth, plain HTTP.

Its fixture covers every vmSize of the sample fleet, the benchmark fleet and the tests, with the meters a real
answer mixes in (Windows, Spot, Low Priority) so the app's choice of the Linux pay-as-you-go meter is exercised.
Like the real API in version 2023-01-01-preview, filter values are compared case-sensitively.

Fault modes, for tests of what the app does with a bad or slow API (attributes, changeable while it runs): `delay`
(seconds before each answer), `body` (answered as is instead of the price list, e.g. `[]`, `null`, an error object),
`retail_price` (every Linux pay-as-you-go meter's price, e.g. NaN, -1 or 1e308, written as Python's json writes
them) and `next_page_link` (the NextPageLink of each first page; a request with `page` in its query is a next page).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devhost.standins.loopback import BackgroundServer

log = logging.getLogger(__name__)

# (armSkuName, Linux pay-as-you-go USD per hour in westeurope; Windows / Spot are derived decoys)
FIXTURE: tuple[tuple[str, float], ...] = (
    ("Standard_DS3_v2", 0.293),
    ("Standard_NC6s_v3", 3.823),
    ("Standard_E4ds_v4", 0.336),
    ("Standard_DS11_v2", 0.185),
    ("Standard_NC4as_T4_v3", 0.658),
)
_FILTER_RE = re.compile(r"(\w+) eq '([^']*)'")


def _items(region: str, currency: str, rate: float, linux_price: float | None = None) -> list[dict[str, Any]]:
    out = []
    for sku, usd in FIXTURE:
        base = {
            "currencyCode": currency,
            "unitOfMeasure": "1 Hour",
            "armRegionName": region,
            "armSkuName": sku,
            "serviceName": "Virtual Machines",
            "type": "Consumption",
            "isPrimaryMeterRegion": True,
        }
        family = sku.split("_")[1]
        for product, sku_name, factor in (
            (f"Virtual Machines {family} Series Windows", sku.split("_", 1)[1], 1.9),
            (f"Virtual Machines {family} Series", f"{sku.split('_', 1)[1]} Spot", 0.2),
            (f"Virtual Machines {family} Series", sku.split("_", 1)[1], 1.0),
            (f"Virtual Machines {family} Series", f"{sku.split('_', 1)[1]} Low Priority", 0.2),
        ):
            price = round(usd * factor * rate, 4)
            if linux_price is not None and factor == 1.0:
                price = linux_price
            out.append({**base, "productName": product, "skuName": sku_name, "retailPrice": price, "unitPrice": price})
    return out


class PricesStandin:
    """The Retail Prices API on http://127.0.0.1:{port}/api/retail/prices."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        eur_rate: float = 0.92,
        delay: float = 0.0,
        body: str | None = None,
        retail_price: float | None = None,
        next_page_link: str | None = None,
    ) -> None:
        self._host, self._port, self.eur_rate = host, port, eur_rate
        self.delay, self.body, self.retail_price, self.next_page_link = delay, body, retail_price, next_page_link
        self._http = BackgroundServer("prices-standin")
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self.url = ""

    def answer(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if not query.get("api-version"):
            return 400, {"Error": {"Code": "BadRequest", "Message": "api-version is required"}}
        currency = (query.get("currencyCode") or ["USD"])[0].strip("'")
        rate = {"USD": 1.0, "EUR": self.eur_rate}.get(currency.upper())
        if rate is None:
            return 400, {"Error": {"Code": "BadRequest", "Message": f"Invalid currency code {currency}"}}
        conditions = dict(_FILTER_RE.findall((query.get("$filter") or [""])[0]))
        region = conditions.get("armRegionName", "westeurope")
        items = [
            item
            for item in _items(region, currency.upper(), rate, self.retail_price)
            # case-sensitive, as the real API; the filter's `priceType` is the items' `type`
            if all(item.get("type" if k == "priceType" else k) == v for k, v in conditions.items())
        ]
        return 200, {
            "BillingCurrency": currency.upper(),
            "CustomerEntityType": "Retail",
            "Items": items,
            "NextPageLink": None if "page" in query else self.next_page_link,
            "Count": len(items),
        }

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with standin._lock:
                    standin.requests.append(self.path)
                if standin.delay:
                    time.sleep(standin.delay)
                if parts.path.rstrip("/") != "/api/retail/prices":
                    status, body = 404, {"Error": {"Code": "NotFound", "Message": parts.path}}
                else:
                    status, body = standin.answer(parse_qs(parts.query))
                payload = json.dumps(body).encode() if standin.body is None else standin.body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("prices-standin: " + format, *args)

        port = self._http.start(Handler, self._host, self._port)
        self.url = f"http://{self._host}:{port}/api/retail/prices"
        return self.url

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> PricesStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
