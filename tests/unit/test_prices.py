"""Prices from a broken, hostile or slow Retail Prices API (the loopback stand-in's fault modes) and from bad
`PRICE_OVERRIDES`: never a NaN or an infinity in what the app writes, always a reason, and bounded time (issue 19)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from devhost.standins.prices import PricesStandin
from shared.compute import prices as prices_module
from shared.compute.arm import ComputeInstance
from shared.compute.prices import Price, parse_overrides, prices
from shared.compute.report import InstanceResult
from shared.compute.savings import with_savings
from shared.errors import SettingsError

SIZE = "STANDARD_NC6S_V3"
AT = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def strict_json(value: Any) -> str:
    """JSON as a browser or `jq` reads it: NaN and Infinity are not JSON."""
    return json.dumps(value, allow_nan=False)


def savings_report(found: dict[str, Price | str]) -> list[dict[str, Any]]:
    """What a run's report holds for a stopped instance of each size, priced with `found` (as the activity hands
    prices to the orchestrator: payload dicts or reasons)."""
    answer = {size: p if isinstance(p, str) else p.to_dict() for size, p in found.items()}
    listed = {("s/rg/ws", size): ComputeInstance("s/rg/ws", size, "Running", size=size) for size in found}
    stopped = [InstanceResult("s/rg/ws", size, "Running", "stop", "stop: nightly", "stopped") for size in found]
    priced = with_savings(stopped, listed, answer, AT, schedules=None, tag="t", shutdown_schedule="0 0 22 * * *")
    return [r.to_dict() for r in priced]


@pytest.mark.parametrize(
    ("retail_price", "fragment"),
    [
        (float("nan"), "answered something that is not JSON (NaN is not a number)"),
        (float("inf"), "answered something that is not JSON (Infinity is not a number)"),
        (-0.5, "answered a retailPrice of -0.5 for Standard_NC6s_v3: expected a number from 0 to 10000000 an hour"),
        (1e308, "answered a retailPrice of 1e+308 for Standard_NC6s_v3"),
    ],
)
def test_a_price_that_is_not_a_price_never_reaches_a_report(retail_price: float, fragment: str) -> None:
    with PricesStandin(retail_price=retail_price) as standin:
        found = prices([SIZE], {"PRICES_ENDPOINT": standin.url})
    reason = found[SIZE]
    assert isinstance(reason, str) and fragment in reason
    [result] = savings_report(found)
    strict_json(result)  # before: "estimated_savings": NaN / Infinity, which no JSON reader accepts
    assert result["estimated_savings"] is None and reason in result["reason"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"Standard_DS3_v2": Infinity}', "not valid JSON (Infinity is not a number)"),
        ('{"Standard_DS3_v2": NaN}', "not valid JSON (NaN is not a number)"),
        ('{"Standard_DS3_v2": 1e400}', "must be a number from 0 to 10000000 (an hourly price), got inf"),
        ('{"Standard_DS3_v2": ' + "9" * 5000 + "}", "must be a number from 0 to 10000000"),
        ('{"Standard_DS3_v2": -1}', "got -1.0"),
        ('{"Standard_DS3_v2": "cheap"}', "got 'cheap'"),
        ("[0.2]", "must be a JSON object"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_overrides_are_a_settings_error_naming_the_setting(text: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match="PRICE_OVERRIDES") as raised:
        prices([SIZE], {"PRICE_OVERRIDES": text, "PRICES_ENDPOINT": "http://127.0.0.1:9"})
    assert fragment in str(raised.value)
    assert len(str(raised.value)) < 300  # a 5,000-digit value is not quoted whole


def test_good_overrides_stay_as_they_were() -> None:
    assert parse_overrides('{"Standard_DS3_v2": 0.21, "STANDARD_E4DS_V4": 1}') == {
        "standard_ds3_v2": 0.21,
        "standard_e4ds_v4": 1.0,
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[]", "answered a JSON array, not a price list with 'Items'"),
        ("null", "answered null, not a price list"),
        (
            '{"Message": "An error has occurred.", "ExceptionMessage": "Object reference not set", '
            '"ExceptionType": "System.NullReferenceException", "StackTrace": "   at Prices.Api..."}',
            "answered an object without 'Items' (keys: ExceptionMessage, ExceptionType, Message, StackTrace)",
        ),
        ('{"Items": [{"retailPrice": 1' + "0" * 5000 + "}]}", "not JSON"),
        ("<html>502 Bad Gateway</html>", "not JSON"),
    ],
)
def test_an_answer_that_is_not_a_price_list_gives_a_clear_reason(body: str, fragment: str) -> None:
    with PricesStandin(body=body) as standin:
        found = prices([SIZE], {"PRICES_ENDPOINT": standin.url})
    reason = found[SIZE]
    assert isinstance(reason, str) and reason.startswith("retail price of Standard_NC6s_v3 not read: ")
    assert fragment in reason
    assert "StackTrace" not in reason.replace("keys: ExceptionMessage, ExceptionType, Message, StackTrace", "")
    [result] = savings_report(found)
    assert "VM size is unknown" not in result["reason"] and fragment in result["reason"]


@pytest.mark.parametrize(
    "link", ["file:///etc/hostname", "https://evil.example/api/retail/prices?page=2", "ftp://127.0.0.1/x"]
)
def test_a_next_page_off_the_prices_origin_is_not_followed(link: str) -> None:
    with PricesStandin(next_page_link=link) as standin:
        found = prices([SIZE], {"PRICES_ENDPOINT": standin.url})
        assert len(standin.requests) == 1
    assert isinstance(found[SIZE], str) and "NextPageLink off its own origin" in str(found[SIZE])
    assert "localhost" not in str(found[SIZE])  # nothing read from the link (before: /etc/hostname's content)


def test_a_next_page_on_the_prices_origin_is_followed() -> None:
    with PricesStandin() as standin:
        standin.next_page_link = f"{standin.url}?api-version=2023-01-01-preview&page=2"
        found = prices([SIZE], {"PRICES_ENDPOINT": standin.url, "PRICES_REGION": "eastus"})
        assert len(standin.requests) == 2 and "page=2" in standin.requests[1]
    assert found[SIZE] == Price(SIZE, 3.823, "USD", "retail")


def test_a_slow_api_delays_a_run_once_and_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: 10 s per VM size, sizes one after the other, on every run (failures were not remembered)."""
    monkeypatch.setattr(prices_module, "BUDGET_SECONDS", 1.0)
    sizes = ["STANDARD_DS3_V2", "STANDARD_NC6S_V3", "STANDARD_E4DS_V4", "STANDARD_DS11_V2", "STANDARD_NC4AS_T4_V3"]
    with PricesStandin(delay=3.0) as standin:
        env = {"PRICES_ENDPOINT": standin.url, "PRICES_REGION": "francecentral"}
        started = time.monotonic()
        found = prices(sizes, env)
        first = time.monotonic() - started
        assert all(isinstance(found[s], str) and "within 1 s" in str(found[s]) for s in sizes), found
        assert first < 2.5
        asked = len(standin.requests)
        started = time.monotonic()
        again = prices(sizes, env)
        assert time.monotonic() - started < 0.2 and len(standin.requests) == asked  # remembered for a while
        assert again == found
        monkeypatch.setattr(prices_module, "FAILED_TTL_SECONDS", 0.0)
        standin.delay = 0.0
        prices_module._remember((standin.url, "francecentral", "USD", "standard_ds3_v2"), "expired")
        assert prices(["STANDARD_DS3_V2"], env)["STANDARD_DS3_V2"] == Price("STANDARD_DS3_V2", 0.293, "USD", "retail")


def stopped_instance_priced(answer: dict[str, Any]) -> InstanceResult:
    """A stopped instance of SIZE with savings from the prices activity's answer."""
    listed = {("s/rg/ws", "ci"): ComputeInstance("s/rg/ws", "ci", "Running", size=SIZE)}
    stopped = [InstanceResult("s/rg/ws", "ci", "Running", "stop", "stop: nightly", "stopped")]
    [result] = with_savings(stopped, listed, answer, AT, schedules=None, tag="t", shutdown_schedule="0 0 22 * * *")
    return result


def test_bad_overrides_give_every_instance_their_reason_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.compute.workspace_finish import _prices

    monkeypatch.setenv("PRICE_OVERRIDES", '{"Standard_DS3_v2": Infinity}')
    prices, error = _prices([SIZE])
    strict_json({"prices": prices, "error": error})
    assert error is not None and "PRICE_OVERRIDES" in error
    reason = stopped_instance_priced(prices).reason
    assert "PRICE_OVERRIDES" in reason and "VM size" not in reason  # before: "the instance's VM size is unknown"


def test_a_size_without_any_answer_is_not_called_unknown() -> None:
    assert stopped_instance_priced({}).reason.endswith("no price: no price was read")
