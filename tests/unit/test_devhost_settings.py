"""devhost's settings registry: every setting devhost reads is declared there, documented in devhost/SETTINGS.md
as generated, and a malformed value is refused naming the setting; DEVHOST_APP_HOOKS loads the app's hooks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from devhost.config import ConfigError
from devhost.hooks import AppHooks, load_app_hooks
from devhost.settings import ALL_SETTINGS, SETTINGS_DOC, DevhostSetting, _choice, main, markdown

DEVHOST = Path(__file__).resolve().parents[2] / "devhost"


def _sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in sorted(DEVHOST.rglob("*.py"))}


def test_settings_md_is_the_generated_one() -> None:
    assert SETTINGS_DOC.read_text(encoding="utf-8") == markdown(), (
        "devhost/SETTINGS.md is out of date: run .venv/bin/python -m devhost.settings"
    )
    assert main(["--check"]) == 0


def test_every_devhost_setting_named_in_devhost_is_declared() -> None:
    named = {name for text in _sources().values() for name in re.findall(r"\bDEVHOST_[A-Z_]*[A-Z]\b", text)}
    assert named, "the scan sees devhost's settings"
    assert named - set(ALL_SETTINGS) == set()


def test_only_the_registry_spells_a_setting_name_as_a_string() -> None:
    # os.environ.get("DEVHOST_X") anywhere else would bypass the registry's type, default and error message.
    found = []
    for path, text in _sources().items():
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Constant) and node.value in ALL_SETTINGS:
                found.append(f"{path.name}:{node.lineno} {node.value}")
    assert found == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "DEVHOST_ARM_THROTTLE",
            "fast",
            "setting DEVHOST_ARM_THROTTLE='fast' is malformed: expected one of 'arm', 'off'",
        ),
        (
            "DEVHOST_ARM_TRANSITION_SECONDS",
            "soon",
            "DEVHOST_ARM_TRANSITION_SECONDS='soon' is malformed: expected a number >= 0",
        ),
        ("DEVHOST_ARM_TRANSITION_SECONDS", "-1", "expected a number >= 0"),
        (
            "FUNCTIONS_WORKER_PROCESS_COUNT",
            "0",
            "FUNCTIONS_WORKER_PROCESS_COUNT='0' is malformed: expected a whole number >= 1",
        ),
        ("FUNCTIONS_WORKER_PROCESS_COUNT", "two", "expected a whole number >= 1"),
        ("DEVHOST_ARM_PAGE_SIZE", "0", "DEVHOST_ARM_PAGE_SIZE='0' is malformed: expected a whole number >= 1"),
        (
            "DEVHOST_GRPC_MAX_MESSAGE_MB",
            "2",
            "DEVHOST_GRPC_MAX_MESSAGE_MB='2' is malformed: expected a whole number >= 4",
        ),
        ("DEVHOST_APP_HOOKS", "local_hooks", "DEVHOST_APP_HOOKS='local_hooks' is malformed: expected module:function"),
        (
            "DEVHOST_KEYVAULT_SECRETS",
            "[1]",
            "DEVHOST_KEYVAULT_SECRETS(value not shown) is malformed: expected a JSON object",
        ),
    ],
)
def test_a_malformed_value_is_refused_naming_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ALL_SETTINGS[name].get({name: value})
    assert message in str(caught.value)


def test_a_secret_setting_never_shows_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        ALL_SETTINGS["DEVHOST_KEYVAULT_SECRETS"].get({"DEVHOST_KEYVAULT_SECRETS": '{"a": "hunter2"'})
    assert "hunter2" not in str(caught.value)


def test_defaults_and_types() -> None:
    assert ALL_SETTINGS["DEVHOST_ARM_THROTTLE"].get({}) == "arm"
    assert ALL_SETTINGS["DEVHOST_ARM_TRANSITION_SECONDS"].get({"DEVHOST_ARM_TRANSITION_SECONDS": " "}) == 5.0
    assert ALL_SETTINGS["FUNCTIONS_WORKER_PROCESS_COUNT"].get({}) is None
    assert ALL_SETTINGS["FUNCTIONS_WORKER_PROCESS_COUNT"].get({"FUNCTIONS_WORKER_PROCESS_COUNT": "3"}) == 3
    assert ALL_SETTINGS["DEVHOST_KEYVAULT_SECRETS"].get({"DEVHOST_KEYVAULT_SECRETS": '{"a": 1}'}) == {"a": "1"}
    assert ALL_SETTINGS["DEVHOST_ARM_PAGE_SIZE"].get({}) == 3  # the ARM stand-in's page size before the setting
    assert ALL_SETTINGS["DEVHOST_GRPC_MAX_MESSAGE_MB"].get({}) == 256


def test_the_arm_page_size_setting_reaches_the_arm_standin(tmp_path: Path) -> None:
    from devhost.standins_setup import start_standins

    env = {"DEVHOST_ARM_FLEET": "devhost/standins/fleet.sample.json", "DEVHOST_ARM_PAGE_SIZE": "7"}
    started = start_standins(env, tmp_path)
    try:
        [arm] = [s for s in started if "Azure Resource Manager" in str(s)]
        assert arm.target.page_size == 7 and str(arm).endswith("7 per page")
    finally:
        for standin in started:
            standin.stop()


def test_a_new_setting_makes_the_check_fail_until_regenerated(tmp_path: Path) -> None:
    output = tmp_path / "SETTINGS.md"
    assert main(["--output", str(output)]) == 0
    ALL_SETTINGS["DEVHOST_ZZ_NEW"] = DevhostSetting(
        "DEVHOST_ZZ_NEW", _choice("a", "b"), "one of `a`, `b`", "a", "a|knob"
    )
    try:
        assert main(["--output", str(output), "--check"]) == 1
        assert main(["--output", str(output)]) == 0
        assert "| `DEVHOST_ZZ_NEW` | one of `a`, `b` | `a` | a\\|knob |" in output.read_text()
    finally:
        del ALL_SETTINGS["DEVHOST_ZZ_NEW"]


def test_no_app_hooks_when_unset() -> None:
    assert load_app_hooks({}) == AppHooks()


def test_the_apps_hooks_hand_devhost_the_key_vault_resolver_and_telemetry() -> None:
    hooks = load_app_hooks({"DEVHOST_APP_HOOKS": "local_hooks:devhost_hooks"})
    assert hooks.resolve_setting_reference is not None
    assert hooks.configure_telemetry is not None
    assert [t.__name__ for t in hooks.error_types] == ["AppError"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_xyz:hooks", "DEVHOST_APP_HOOKS='no_such_module_xyz:hooks': cannot import no_such_module_xyz"),
        ("local_hooks:missing", "DEVHOST_APP_HOOKS='local_hooks:missing': local_hooks has no function missing"),
        ("os:getcwd", "DEVHOST_APP_HOOKS='os:getcwd' returned str; expected devhost.hooks.AppHooks"),
    ],
)
def test_an_unusable_hooks_reference_is_refused_naming_it(reference: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_app_hooks({"DEVHOST_APP_HOOKS": reference})
    assert message in str(caught.value)


def test_a_key_vault_schedule_without_the_resolver_hook_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devhost.host import _PlatformSettings
    from devhost.timers import ScheduleError, resolve_setting_expression

    monkeypatch.setenv("NIGHTLY", "@Microsoft.KeyVault(VaultName=v;SecretName=s)")
    with pytest.raises(ScheduleError, match="setting NIGHTLY is a Key Vault reference, and DEVHOST_APP_HOOKS gives"):
        resolve_setting_expression("%NIGHTLY%", _PlatformSettings(AppHooks()))
    hooks = AppHooks(resolve_setting_reference=lambda name, value, env: "0 0 22 * * *")
    assert resolve_setting_expression("%NIGHTLY%", _PlatformSettings(hooks)) == "0 0 22 * * *"


def test_a_span_file_without_the_telemetry_hook_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from devhost.spans import install_span_file

    monkeypatch.setenv("DEVHOST_SPAN_FILE", str(tmp_path / "spans.jsonl"))
    with pytest.raises(ConfigError, match="DEVHOST_SPAN_FILE is set, but DEVHOST_APP_HOOKS gives devhost no"):
        install_span_file(AppHooks())
