"""What devhost's Durable bridge knows as the extension does: registered names, its messages, version rules."""

from __future__ import annotations

import json
from pathlib import Path

import azure.durable_functions as df
import pytest

from devhost.config import ConfigError, HostJson
from devhost.durable_catalog import (
    ACTIVITY,
    ENTITY,
    DurableCatalog,
    FunctionDoesNotExist,
    VersionPolicy,
    compare_versions,
)
from devhost.index import index_app


def _catalog() -> DurableCatalog:
    app = df.DFApp()

    @app.activity_trigger(input_name="city", activity="SayHello")
    def say_hello(city: str) -> str:
        return city

    @app.activity_trigger(input_name="payload")
    def raise_exception(payload: str) -> str:
        return payload

    return DurableCatalog.build(index_app(app))


def test_a_call_by_the_python_name_fails_with_the_extensions_message_listing_the_registered_names() -> None:
    catalog = _catalog()
    assert catalog.require(ACTIVITY, "sayhello").registered == "SayHello"
    with pytest.raises(FunctionDoesNotExist) as caught:
        catalog.require(ACTIVITY, "say_hello")
    # DurableTaskExtension.GetInvalidActivityFunctionMessage
    assert str(caught.value) == (
        "The function 'say_hello' doesn't exist, is disabled, or is not an activity function. Additional info: "
        "The following are the known activity functions: 'SayHello', 'raise_exception'."
    )
    assert catalog.missing_message(ENTITY, "Counter").endswith("No entity functions are currently registered!")


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [
        ("", None, 0),  # empty and null are equal
        ("", "1.0", -1),  # and older than any version
        ("1.0", "", 1),
        ("1.10", "1.9", 1),  # System.Version: numerically, part by part
        ("2", "10", -1),  # a lone number compares as a number
        ("2.0", "2.0", 0),
        ("v1.0-release", "V1.0-RELEASE", 0),  # otherwise case-insensitive text
        ("2025-01-01", "2025-02-01", -1),
    ],
)
def test_versions_compare_by_the_documented_rules(left: str | None, right: str | None, order: int) -> None:
    assert compare_versions(left, right) == order


def test_current_or_older_refuses_only_newer_versions_strict_any_other_and_none_nothing() -> None:
    current = VersionPolicy("2.0", "currentorolder", "fail")
    assert current.refusal("1.0") is None and current.refusal("") is None and current.refusal("2.0") is None
    assert current.refusal("3.0") == "The orchestration version '3.0' is greater than the worker version '2.0'."
    assert VersionPolicy("2.0", "strict").refusal("1.0") == (
        "The orchestration version '1.0' does not match the worker version '2.0'."
    )
    assert VersionPolicy("2.0", "none").refusal("9.0") is None
    assert VersionPolicy(None).refusal("9.0") is None  # no defaultVersion: nothing to compare with


def test_host_json_versioning_options_are_read_and_a_wrong_one_stops_devhost(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"durableTask": {"defaultVersion": "2.0"}}}))
    loaded = HostJson.load(path)
    assert (loaded.default_version, loaded.version_match_strategy, loaded.version_failure_strategy) == (
        "2.0",
        "currentorolder",
        "reject",
    )
    path.write_text(json.dumps({"extensions": {"durableTask": {"versionMatchStrategy": "Newest"}}}))
    with pytest.raises(ConfigError, match="versionMatchStrategy is 'Newest'; expected one of None, Strict"):
        HostJson.load(path)
