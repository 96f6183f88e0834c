"""devhost's keys as the Functions host checks them (azure-functions-host AuthenticationLevelHandler and
AuthUtility.PrincipalHasAuthLevelClaim), and the settings devhost hands its workers however large they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.child_env import SPILL_OVER, exec_environment, restore_spilled
from devhost.config import ConfigError
from devhost.keys import DURABLETASK_EXTENSION, EVENTGRID_EXTENSION, HostKeys, presented_key


@pytest.fixture
def keys(tmp_path: Path) -> HostKeys:
    return HostKeys.load_or_create("the-master-key", tmp_path / "secrets" / "host.json")


def test_each_key_opens_its_level_exactly_and_the_master_key_every_level(keys: HostKeys) -> None:
    durable, eventgrid = keys.system[DURABLETASK_EXTENSION], keys.system[EVENTGRID_EXTENSION]
    assert [keys.opens_function(k) for k in (keys.function, durable, eventgrid, keys.master)] == [
        True,
        False,
        False,
        True,
    ]
    assert [
        keys.opens_extension(k, DURABLETASK_EXTENSION) for k in (keys.function, durable, eventgrid, keys.master)
    ] == [
        False,
        True,
        False,
        True,
    ]
    assert [keys.opens_admin(k) for k in (keys.function, durable, keys.master)] == [False, False, True]
    assert not keys.opens_function("") and not keys.opens_admin("")


def test_the_header_is_read_before_the_code_parameter_even_when_empty() -> None:
    assert presented_key({"x-functions-key": "h"}, {"code": "q"}) == "h"
    assert presented_key({"x-functions-key": ""}, {"code": "q"}) == ""
    assert presented_key({}, {"code": "q"}) == "q"
    assert presented_key({}, {}) == ""


def test_keys_are_made_once_kept_owner_only_and_read_back(keys: HostKeys, tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "host.json"
    assert path.stat().st_mode & 0o777 == 0o600
    again = HostKeys.load_or_create("another-master", path)
    assert (again.function, dict(again.system)) == (keys.function, dict(keys.system))
    assert again.master == "another-master"  # the master key is DEVHOST_KEY's, never stored
    assert "the-master-key" not in path.read_text()
    assert len({keys.function, *keys.system.values()}) == 3 and all(len(k) >= 40 for k in keys.all_values[1:])


def test_an_unreadable_key_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"host\.json is unreadable .* delete it"):
        HostKeys.load_or_create("m", path)


def test_settings_too_large_for_exec_travel_in_a_file_and_come_back(tmp_path: Path) -> None:
    big = "s" * (200 * 1024)
    environ = {"SMALL": "1", "BIG": big, "PATH": os.environ["PATH"]}
    spill = tmp_path / "worker-settings.json"
    env = exec_environment(environ, spill)
    assert "BIG" not in env and env["SMALL"] == "1"
    assert all(len(v) < SPILL_OVER for v in env.values())
    assert spill.stat().st_mode & 0o777 == 0o600
    # A child started with that environment (exec refuses a 200 KiB string) gets every setting back.
    code = "from devhost.child_env import restore_spilled; import os; restore_spilled(); print(len(os.environ['BIG']))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(len(big))
    restored = dict(env)
    restore_spilled(restored)
    assert restored == environ
    assert exec_environment({"SMALL": "1"}, tmp_path / "none.json") == {"SMALL": "1"}
    assert not (tmp_path / "none.json").exists()
    assert json.loads(spill.read_text()) == {"BIG": big}
