"""Every setting devhost itself reads, declared once with its type, default and meaning.

devhost reads its `DEVHOST_*` settings (and the few host settings it honours, like FUNCTIONS_WORKER_PROCESS_COUNT)
only through `DevhostSetting.get(env)`, from the environment after local.settings.json was applied. A malformed
value stops devhost at start with a ConfigError naming the setting and what was expected.

devhost/SETTINGS.md is generated from this registry: `python -m devhost.settings` rewrites it, `--check` fails
when it is out of date (tests/unit/test_devhost_settings.py runs the check).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from devhost.config import ConfigError

T = TypeVar("T")

SETTINGS_DOC = Path(__file__).resolve().parent / "SETTINGS.md"


@dataclass(frozen=True)
class DevhostSetting(Generic[T]):
    """One setting: its name, how its text becomes a value, the text used when it is unset, and what it means."""

    name: str
    parse: Callable[[str], T]
    type: str
    default: str = ""
    doc: str = ""
    secret: bool = False

    def raw(self, env: Mapping[str, str] | None = None) -> str:
        value = (os.environ if env is None else env).get(self.name, "")
        return value if value.strip() else self.default

    def get(self, env: Mapping[str, str] | None = None) -> T:
        raw = self.raw(env)
        try:
            return self.parse(raw)
        except ValueError as err:
            shown = "(value not shown)" if self.secret else f"={raw!r}"
            raise ConfigError(f"setting {self.name}{shown} is malformed: {err}") from None


def _text(raw: str) -> str:
    return raw.strip()


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}")
        return value

    return parse


def _number_at_least(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number >= {minimum:g}") from None
        if not value >= minimum:  # also refuses NaN
            raise ValueError(f"expected a number >= {minimum:g}")
        return value

    return parse


def _optional_count(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("expected a whole number >= 1") from None
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def _whole_number_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number >= {minimum}") from None
        if value < minimum:
            raise ValueError(f"expected a whole number >= {minimum}")
        return value

    return parse


def _secrets(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON object of secret name -> value ({err})") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of secret name -> value")
    return {str(name): str(secret) for name, secret in value.items()}


def _hooks_reference(raw: str) -> str:
    value = raw.strip()
    if value and (value.count(":") != 1 or not all(part.strip() for part in value.split(":"))):
        raise ValueError("expected module:function, e.g. local_hooks:devhost_hooks")
    return value


DEVHOST_KEY = DevhostSetting(
    "DEVHOST_KEY",
    _text,
    "text",
    doc="The master key: it opens every HTTP function, the Durable HTTP API, the Event Grid webhook and `/admin`, "
    "as the host's master key does; unset: a new one at each start (printed in the start-up banner). The function "
    "key `default` (HTTP functions only) and the system keys `durabletask_extension` and `eventgrid_extension` "
    "(their webhook only) are made once and kept in `<data dir>/secrets/host.json`. `python -m devhost.upload` "
    "reads it too.",
    secret=True,
)
DEVHOST_APP_HOOKS = DevhostSetting(
    "DEVHOST_APP_HOOKS",
    _hooks_reference,
    "`module:function`",
    doc="A function devhost calls in the host and in every worker after importing function_app; it returns the "
    "app's hooks (`devhost.hooks.AppHooks`): Key Vault references in `%SETTING%` schedules, telemetry set-up, "
    "the app's configuration errors. Unset: no hooks.",
)
DEVHOST_EVENTGRID_SUBSCRIPTIONS = DevhostSetting(
    "DEVHOST_EVENTGRID_SUBSCRIPTIONS",
    _text,
    "JSON list",
    doc="Event Grid subscriptions to emulate: `[{function, subjectBeginsWith, subjectEndsWith}]`; blobs created in "
    "AzureWebJobsStorage are delivered to the function as BlobCreated events. Unset: no relay.",
)
DEVHOST_ARM_FLEET = DevhostSetting(
    "DEVHOST_ARM_FLEET",
    _text,
    "path",
    doc="A fleet JSON file (relative to the app root): starts the managed-identity, Azure Resource Manager and "
    "Retail Prices stand-ins seeded from it. Unset: no ARM stand-in.",
)
DEVHOST_ARM_THROTTLE = DevhostSetting(
    "DEVHOST_ARM_THROTTLE",
    _choice("arm", "off"),
    "one of `arm`, `off`",
    "arm",
    doc="`arm` enforces ARM's request buckets per subscription in the ARM stand-in; `off` lifts them.",
)
DEVHOST_ARM_TRANSITION_SECONDS = DevhostSetting(
    "DEVHOST_ARM_TRANSITION_SECONDS",
    _number_at_least(0),
    "number >= 0",
    "5",
    doc="How long a compute instance of the ARM stand-in stays Stopping/Starting.",
)
DEVHOST_ARM_PAGE_SIZE = DevhostSetting(
    "DEVHOST_ARM_PAGE_SIZE",
    _whole_number_at_least(1),
    "whole number >= 1",
    "3",
    doc="Compute instances per page of the ARM stand-in's list operation (ARM pages large lists with a "
    "`nextLink`); raise it to test large fleets with realistic pages.",
)
DEVHOST_GRPC_MAX_MESSAGE_MB = DevhostSetting(
    "DEVHOST_GRPC_MAX_MESSAGE_MB",
    _whole_number_at_least(4),
    "whole number >= 4",
    "256",
    doc="The largest message, in MiB, between devhost's Durable engine and its workers: an orchestration's history, "
    "an episode's actions and output, an activity's result. Azure has no such limit below 2 GiB (the Functions "
    "host's worker channel; Azure Storage moves large payloads to blobs); past this one, devhost fails the "
    "instance (or the activity) saying how large the payload was.",
)
DEVHOST_KEYVAULT_SECRETS = DevhostSetting(
    "DEVHOST_KEYVAULT_SECRETS",
    _secrets,
    "JSON object",
    doc="Secret name -> value: starts a Key Vault stand-in holding them, so a setting may be a "
    "`@Microsoft.KeyVault(...)` reference locally. Unset: no vault stand-in.",
    secret=True,
)
DEVHOST_NOTIFY_SINK = DevhostSetting(
    "DEVHOST_NOTIFY_SINK",
    _choice("on", "off"),
    "one of `on`, `off`",
    "off",
    doc="`on` starts the notification stand-in: webhook, Teams and Slack endpoints and Azure Communication Services "
    "Email (with the managed-identity stand-in), reached at https://<any>.devhost.invalid through devhost's proxy; "
    "it records what the heads-up would have sent, shown at /devhost/notifications (function key).",
)
DEVHOST_SPAN_FILE = DevhostSetting(
    "DEVHOST_SPAN_FILE",
    _text,
    "path",
    doc="Every devhost process appends its finished spans to this file as JSON lines (needs the "
    "`configure_telemetry` hook). Unset: no span file.",
)
FUNCTIONS_WORKER_PROCESS_COUNT = DevhostSetting(
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    _optional_count,
    "whole number >= 1",
    doc="Worker processes running orchestrators and activities, as on the Functions host (`--workers` wins). "
    "Unset: one per core.",
)

ALL_SETTINGS: dict[str, DevhostSetting[Any]] = {
    s.name: s
    for s in (
        DEVHOST_KEY,
        DEVHOST_APP_HOOKS,
        DEVHOST_EVENTGRID_SUBSCRIPTIONS,
        DEVHOST_ARM_FLEET,
        DEVHOST_ARM_THROTTLE,
        DEVHOST_ARM_TRANSITION_SECONDS,
        DEVHOST_ARM_PAGE_SIZE,
        DEVHOST_GRPC_MAX_MESSAGE_MB,
        DEVHOST_KEYVAULT_SECRETS,
        DEVHOST_NOTIFY_SINK,
        DEVHOST_SPAN_FILE,
        FUNCTIONS_WORKER_PROCESS_COUNT,
    )
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """devhost/SETTINGS.md as the registry says it."""
    lines = [
        "# devhost settings",
        "",
        "<!-- Generated from devhost/settings.py by `python -m devhost.settings`; do not edit by hand. -->",
        "",
        "Read from the environment after the `Values` of local.settings.json (or `--settings`) are applied; "
        "a malformed value stops devhost at start naming the setting.",
        "",
        "| Setting | Type | Default | Meaning |",
        "|---|---|---|---|",
    ]
    for setting in ALL_SETTINGS.values():
        default = f"`{setting.default}`" if setting.default else "unset"
        lines.append(
            f"| `{setting.name}` | {_cell(setting.type)} | {default} | {_cell(setting.doc)}"
            f"{' (secret: never logged)' if setting.secret else ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.settings", description="Regenerate devhost/SETTINGS.md")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date, change nothing")
    parser.add_argument("--output", type=Path, default=SETTINGS_DOC)
    args = parser.parse_args(argv)
    text = markdown()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run .venv/bin/python -m devhost.settings", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
