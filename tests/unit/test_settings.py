"""The settings loader: typed values from an injectable environ; a missing or malformed one is named at once."""

from __future__ import annotations

import pytest

from shared import settings
from shared.errors import SettingsError
from shared.settings import ScoringSettings, ShutdownSettings, Workspace

WS = "00000000-0000-0000-0000-000000000001/rg-a/ws-a"


def test_defaults_fill_what_is_not_set() -> None:
    scoring = ScoringSettings.from_env({})
    assert scoring.input_container == "incoming"
    assert scoring.output_container == "predictions"
    assert scoring.chunk_bytes == 8 * 1024 * 1024
    assert scoring.error_threshold == -1


def test_required_setting_missing_is_named() -> None:
    with pytest.raises(SettingsError, match="AML_WORKSPACES is required"):
        ShutdownSettings.from_env({})


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SCORING_CHUNK_BYTES", "ten", "expected an integer"),
        ("SCORING_CHUNK_BYTES", "10", "expected an integer >= 1024"),
        ("SCORING_ERROR_THRESHOLD", "-2", ">= -1"),
        ("SHUTDOWN_MODE", "sometimes", "expected one of opt-out, opt-in"),
        ("SHUTDOWN_DRY_RUN", "maybe", "expected true or false"),
        ("SCORING_INPUT_CONTAINER", "Bad_Name", "blob container name"),
        ("AML_WORKSPACES", "just-a-name", "subscription/resource-group/workspace"),
        ("AML_WORKSPACES", f"{WS},{WS}", "listed twice"),
        ("AML_POLLING_INTERVAL_SECONDS", "nan", "a number >= 0"),
    ],
)
def test_malformed_value_is_named_with_what_was_expected(name: str, value: str, fragment: str) -> None:
    spec = settings.ALL_SETTINGS[name]
    with pytest.raises(SettingsError) as raised:
        spec.get({name: value})
    message = str(raised.value)
    assert name in message and repr(value) in message and fragment in message


def test_secret_value_never_appears_in_the_error() -> None:
    spec = settings.Setting("SOME_SECRET", int, None, secret=True, doc="a number")
    with pytest.raises(SettingsError) as raised:
        spec.get({"SOME_SECRET": "hunter2-password"})
    assert "hunter2" not in str(raised.value) and "SOME_SECRET" in str(raised.value)
    assert "hunter2" not in repr(spec)


def test_workspaces_parse_into_typed_values() -> None:
    parsed = settings.AML_WORKSPACES.get({"AML_WORKSPACES": f" {WS} ; 00000000-0000-0000-0000-000000000002/rg-b/ws-b "})
    assert parsed == (
        Workspace("00000000-0000-0000-0000-000000000001", "rg-a", "ws-a"),
        Workspace("00000000-0000-0000-0000-000000000002", "rg-b", "ws-b"),
    )
    assert parsed[0].key == WS


def test_blank_value_counts_as_unset() -> None:
    assert settings.SCORING_OUTPUT_CONTAINER.get({"SCORING_OUTPUT_CONTAINER": "   "}) == "predictions"
