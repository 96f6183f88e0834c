"""Savings estimates: VM size names for the prices API, retail prices via the stand-in, overrides, hours saved."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devhost.standins.prices import PricesStandin
from shared.compute.arm import ComputeInstance
from shared.compute.cron import next_occurrence
from shared.compute.prices import Price, parse_overrides, prices, sku_name
from shared.compute.report import InstanceResult
from shared.compute.savings import hours_saved, with_savings
from shared.compute.schedules import parse_schedules
from shared.errors import SettingsError

AT = datetime(2026, 12, 4, 18, 0, 30, tzinfo=UTC)  # Friday 19:00:30 in Berlin
SCHEDULES = parse_schedules(
    json.dumps(
        [
            {
                "name": "office",
                "timezone": "Europe/Berlin",
                "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}],
            }
        ]
    )
)


@pytest.mark.parametrize(
    ("arm", "prices_api"),
    [
        ("STANDARD_DS3_V2", "Standard_DS3_v2"),
        ("STANDARD_NC6S_V3", "Standard_NC6s_v3"),
        ("STANDARD_E4DS_V4", "Standard_E4ds_v4"),
        ("Standard_NC24ads_A100_v4", "Standard_NC24ads_A100_v4"),
    ],
)
def test_arm_vm_sizes_become_the_prices_api_sku_names(arm: str, prices_api: str) -> None:
    assert sku_name(arm) == prices_api


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 22 * * *", datetime(2026, 11, 29, 22, 0, tzinfo=UTC), datetime(2026, 11, 30, 22, 0, tzinfo=UTC)),
        ("0 22 * * 1-5", datetime(2026, 12, 4, 22, 0, tzinfo=UTC), datetime(2026, 12, 7, 22, 0, tzinfo=UTC)),
        ("0 30 4 1,15 * 5", datetime(2026, 11, 29, tzinfo=UTC), datetime(2027, 1, 1, 4, 30, tzinfo=UTC)),
        ("*/3 * * * * *", datetime(2026, 11, 29, 22, 0, 1, tzinfo=UTC), datetime(2026, 11, 29, 22, 0, 3, tzinfo=UTC)),
    ],
)
def test_next_nightly_run(expression: str, after: datetime, expected: datetime) -> None:
    assert next_occurrence(expression, after) == expected


def test_a_malformed_schedule_has_no_next_run() -> None:
    assert next_occurrence("every night", AT) is None
    assert next_occurrence("0 0 25 * * *", AT) is None


def test_retail_prices_pick_the_linux_pay_as_you_go_meter_and_are_cached() -> None:
    with PricesStandin() as standin:
        env = {"PRICES_ENDPOINT": standin.url, "PRICES_REGION": "northeurope"}
        found = prices(["STANDARD_NC6S_V3", "STANDARD_X1"], env)
        assert found["STANDARD_NC6S_V3"] == Price("STANDARD_NC6S_V3", 3.823, "USD", "retail")
        assert "no Linux pay-as-you-go retail price for Standard_X1" in str(found["STANDARD_X1"])
        asked = len(standin.requests)
        prices(["STANDARD_NC6S_V3"], env)
        assert len(standin.requests) == asked  # cached per process
        euro = prices(["STANDARD_NC6S_V3"], {**env, "PRICES_CURRENCY": "EUR"})["STANDARD_NC6S_V3"]
        assert isinstance(euro, Price) and euro.currency == "EUR" and euro.hourly_price < 3.823


def test_overrides_win_and_bad_overrides_name_the_setting() -> None:
    found = prices(["STANDARD_DS3_V2"], {"PRICE_OVERRIDES": '{"standard_ds3_v2": 0.2}', "PRICES_ENDPOINT": "http://x"})
    assert found["STANDARD_DS3_V2"] == Price("STANDARD_DS3_V2", 0.2, "USD", "override")
    for bad in ('{"a": -1}', '{"a": "cheap"}', "[1]", "{"):
        with pytest.raises(SettingsError, match="PRICE_OVERRIDES"):
            parse_overrides(bad)


def _ci(tags: dict[str, str]) -> ComputeInstance:
    return ComputeInstance("s/rg/ws", "ci", "Running", tags=tags, size="STANDARD_DS3_V2")


def test_hours_saved_until_the_next_start_or_the_next_nightly_run() -> None:
    scheduled = hours_saved(
        _ci({"compute-schedule": "office"}),
        "stopped",
        AT,
        schedules=SCHEDULES,
        tag="compute-schedule",
        shutdown_schedule="0 0 22 * * *",
    )
    assert scheduled == round((datetime(2026, 12, 7, 7, 0, tzinfo=UTC) - AT).total_seconds() / 3600, 2)  # Monday 08:00
    untagged = hours_saved(
        _ci({}), "stopped", AT, schedules=SCHEDULES, tag="compute-schedule", shutdown_schedule="0 0 22 * * *"
    )
    assert untagged == round((datetime(2026, 12, 4, 22, 0, tzinfo=UTC) - AT).total_seconds() / 3600, 2)
    assert hours_saved(_ci({}), "started", AT, schedules=None, tag="t", shutdown_schedule="0 0 22 * * *") == 0.0


def test_with_savings_prices_only_what_was_stopped_or_started() -> None:
    ci = _ci({"compute-schedule": "office"})
    stopped = InstanceResult("s/rg/ws", "ci", "Running", "stop", "stop: boundary", "stopped")
    skipped = InstanceResult("s/rg/ws", "other", "Running", "skip", "left alone", "skipped")
    listed = {("s/rg/ws", "ci"): ci, ("s/rg/ws", "other"): ci}
    price = {"STANDARD_DS3_V2": {"hourly_price": 0.293, "currency": "USD", "price_source": "retail"}}
    out = with_savings(
        [stopped, skipped], listed, price, AT, schedules=SCHEDULES, tag="compute-schedule", shutdown_schedule=""
    )
    assert out[0].estimated_savings == round(0.293 * (out[0].estimated_hours_saved or 0), 2) > 0
    assert (out[0].vm_size, out[0].price_source) == ("STANDARD_DS3_V2", "retail")
    assert out[1] == skipped
    unpriced = with_savings(
        [stopped],
        listed,
        {"STANDARD_DS3_V2": "no price here"},
        AT,
        schedules=SCHEDULES,
        tag="compute-schedule",
        shutdown_schedule="",
    )[0]
    assert unpriced.estimated_savings is None and "no price: no price here" in unpriced.reason
