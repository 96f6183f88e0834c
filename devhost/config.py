"""devhost configuration: `local.settings.json` values, `host.json` options, and the host's own options."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A devhost option, settings file or host.json is unusable; the message says which and why."""


@dataclass(frozen=True)
class HostJson:
    """The parts of host.json that change how the host behaves."""

    route_prefix: str = "api"
    hub_name: str = "TestHubName"
    max_concurrent_activities: int = 10
    max_concurrent_orchestrations: int = 10
    function_timeout_seconds: float | None = None
    # Orchestration versioning (extensions.durableTask): see devhost/durable_catalog.py.
    default_version: str | None = None
    version_match_strategy: str = "currentorolder"
    version_failure_strategy: str = "reject"

    @classmethod
    def load(cls, path: Path) -> HostJson:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from err
        extensions = data.get("extensions", {})
        durable = extensions.get("durableTask", {})
        prefix = extensions.get("http", {}).get("routePrefix", "api")
        return cls(
            route_prefix=str(prefix).strip("/"),
            hub_name=str(durable.get("hubName", cls.hub_name)),
            max_concurrent_activities=int(durable.get("maxConcurrentActivityFunctions", 10)),
            max_concurrent_orchestrations=int(durable.get("maxConcurrentOrchestratorFunctions", 10)),
            function_timeout_seconds=_parse_timespan(data.get("functionTimeout")),
            default_version=str(durable["defaultVersion"]) if durable.get("defaultVersion") else None,
            version_match_strategy=_choice(durable, "versionMatchStrategy", ("None", "Strict", "CurrentOrOlder"), 2),
            version_failure_strategy=_choice(durable, "versionFailureStrategy", ("Reject", "Fail"), 0),
        )


def _choice(section: dict[str, Any], name: str, choices: tuple[str, ...], default: int) -> str:
    """An enum option of extensions.durableTask, lower-cased (`choices[default]` when unset); another value stops
    devhost at start, as the host refuses an options value it cannot bind."""
    value = section.get(name)
    if value is None:
        return choices[default].lower()
    text = str(value).strip().lower()
    if text not in {c.lower() for c in choices}:
        raise ConfigError(f"host.json extensions.durableTask.{name} is {value!r}; expected one of {', '.join(choices)}")
    return text


def _parse_timespan(text: Any) -> float | None:
    if not text or text == "-1":
        return None
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ConfigError(f"host.json functionTimeout {text!r} is not hh:mm:ss")
    hours, minutes, seconds = parts
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def load_local_settings(path: Path, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Copy `Values` of a local.settings.json into the environment without overriding what is set.

    Returns the values that were applied. A missing file is not an error (everything may come from the
    environment); a malformed one is.
    """
    environ = os.environ if environ is None else environ
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"settings file {path} is not valid JSON: {err}") from err
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigError(f"settings file {path}: 'Values' must be an object of strings")
    applied: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"settings file {path}: value of {name!r} must be a string")
        if name not in environ:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            environ[name] = text
            applied[name] = text
    return applied


def missing_sample_settings(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names the `local.settings.sample.json` beside `path` sets but neither `path` nor the environment does.

    `make run` copies the sample once; a sample that gained settings since (a new feature's defaults) would
    otherwise go unnoticed by everyone whose copy is older.
    """
    environ = os.environ if environ is None else environ
    sample = path.with_name("local.settings.sample.json")
    if sample == path or not sample.exists() or not path.exists():
        return []
    try:
        wanted = json.loads(sample.read_text(encoding="utf-8")).get("Values", {})
        have = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return []  # the settings file's own errors are load_local_settings' to report
    return sorted(name for name in wanted if name not in have and name not in environ)


@dataclass
class HostOptions:
    """Options of one devhost run (command line or test fixture)."""

    script_root: Path = APP_ROOT
    host: str = "127.0.0.1"
    port: int = 7071
    settings_file: Path | None = None
    azurite: bool = True
    azurite_port: int = 10000
    data_dir: Path | None = None
    workers: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.data_dir or (self.script_root / ".devhost")
