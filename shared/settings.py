"""Every setting the app reads, declared once with its type, default and secrecy.

Settings are read through `Setting.get(env)` over an injectable environ mapping (default `os.environ`),
so tests and devhost pass their own. A missing or malformed value fails fast with the setting's name
and what was expected; a secret's value is never part of a message or a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from shared.errors import SettingsError

T = TypeVar("T")

APP_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_URI = str(APP_ROOT / "models" / "height-weight")

KEYVAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("

# (setting name, reference, environ) -> the secret. Handed in by the composition root (function_app.py installs
# shared.keyvault's), so this module never imports the Key Vault SDK's users back: no import cycle.
ReferenceResolver = Callable[[str, str, Mapping[str, str]], str]
_reference_resolver: ReferenceResolver | None = None


def use_reference_resolver(resolver: ReferenceResolver | None) -> None:
    """Install how Key Vault references found in settings are resolved (None: references are refused)."""
    global _reference_resolver  # noqa: PLW0603 - one process-wide hook, set once at start
    _reference_resolver = resolver


def is_reference(value: str) -> bool:
    return value.lstrip().startswith(KEYVAULT_REFERENCE_PREFIX)


def resolve_reference(where: str, value: str, env: Mapping[str, str] | None = None) -> str:
    """A Key Vault reference found inside a setting's value (a URL inside NOTIFY_CHANNELS), resolved by the installed
    resolver; `where` names it in errors (`NOTIFY_CHANNELS[0].url`). A value that is no reference is returned as is."""
    if not is_reference(value):
        return value
    if _reference_resolver is None:
        raise SettingsError(
            f"setting {where} is a Key Vault reference, but no resolver is installed "
            "(function_app installs shared.keyvault's: import it, or call shared.keyvault.install())"
        )
    return _reference_resolver(where, value.strip(), os.environ if env is None else env)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _parse_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"expected an integer <= {maximum}")
        return value

    return parse


def _parse_float(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if not value >= minimum:  # also rejects NaN
            raise ValueError(f"expected a number >= {minimum}")
        return value

    return parse


def _parse_float_range(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _parse_float(minimum)(raw)
        if value > maximum:
            raise ValueError(f"expected a number from {minimum:g} to {maximum:g}")
        return value

    return parse


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_csv_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in re.split(r"[,;\s]+", raw) if item.strip())


_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def _parse_container(raw: str) -> str:
    value = raw.strip()
    if not _CONTAINER_RE.match(value):
        raise ValueError("expected a blob container name (3-63 lowercase letters, digits and single hyphens)")
    return value


@dataclass(frozen=True)
class Workspace:
    """One Azure ML workspace, as named in AML_WORKSPACES (`subscription/resource-group/workspace`)."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.subscription_id}/{self.resource_group}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> Workspace:
        parts = [p.strip() for p in text.strip().strip("/").split("/")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"expected 'subscription/resource-group/workspace', got {text!r}")
        return cls(*parts)


def _parse_workspaces(raw: str) -> tuple[Workspace, ...]:
    items = _parse_csv_list(raw)
    if not items:
        raise ValueError("expected one or more 'subscription/resource-group/workspace'")
    workspaces = tuple(Workspace.parse(item) for item in items)
    keys = [w.key for w in workspaces]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"workspace listed twice: {', '.join(duplicates)}")
    return workspaces


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One app setting: its name, how to parse it, its default (None = required) and whether it is secret."""

    name: str
    parse: Callable[[str], T]
    default: str | None = None
    secret: bool = False
    doc: str = ""

    def raw(self, env: Mapping[str, str] | None = None) -> str | None:
        """The value as configured (Key Vault references resolved), or None when unset and without default."""
        env = os.environ if env is None else env
        value = env.get(self.name)
        if value is None or not value.strip():
            return self.default
        if value.lstrip().startswith(KEYVAULT_REFERENCE_PREFIX):
            # The platform leaves an unresolvable reference as its literal text; resolve it ourselves.
            if _reference_resolver is None:
                raise SettingsError(
                    f"setting {self.name} is a Key Vault reference, but no resolver is installed "
                    "(function_app installs shared.keyvault's: import it, or call shared.keyvault.install())"
                )
            return _reference_resolver(self.name, value.strip(), env)
        return value

    def get(self, env: Mapping[str, str] | None = None) -> T:
        value = self.raw(env)
        if value is None:
            raise SettingsError(f"setting {self.name} is required but not set ({self.doc})")
        try:
            return self.parse(value)
        except ValueError as err:
            configured = (os.environ if env is None else env).get(self.name, "")
            if self.secret or configured.lstrip().startswith(KEYVAULT_REFERENCE_PREFIX):
                # A value from Key Vault is as private as a secret: neither it nor a parse error quoting it is
                # shown, only what was expected.
                raise SettingsError(
                    f"setting {self.name} (value not shown) is malformed: expected {self.doc}"
                ) from None
            raise SettingsError(f"setting {self.name}={value!r} is malformed: {err}") from None

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, secret={self.secret})"


def _setting(name: str, parse: Callable[[str], Any], default: str | None, doc: str, secret: bool = False) -> Any:
    spec = Setting(name, parse, default, secret, doc)
    ALL_SETTINGS[name] = spec
    return spec


ALL_SETTINGS: dict[str, Setting[Any]] = {}

# --- Azure ML compute shutdown -------------------------------------------------------------------------
AML_WORKSPACES: Setting[tuple[Workspace, ...]] = _setting(
    "AML_WORKSPACES",
    _parse_workspaces,
    None,
    "workspaces to manage: 'subscription/resource-group/workspace', comma-separated",
)
SHUTDOWN_SCHEDULE: Setting[str] = _setting(
    "SHUTDOWN_SCHEDULE", _parse_str, "0 0 22 * * *", "NCRONTAB schedule of the nightly shutdown (UTC)"
)
SHUTDOWN_MODE: Setting[str] = _setting(
    "SHUTDOWN_MODE",
    _parse_choice("opt-out", "opt-in"),
    "opt-out",
    "opt-out: stop every running instance unless exempt; opt-in: only instances tagged for shutdown",
)
SHUTDOWN_EXEMPT_TAG: Setting[str] = _setting(
    "SHUTDOWN_EXEMPT_TAG", _parse_str, "auto-shutdown", "tag whose value off/false/exempt exempts an instance"
)
SHUTDOWN_KEEP_ALIVE_TAG: Setting[str] = _setting(
    "SHUTDOWN_KEEP_ALIVE_TAG", _parse_str, "keep-alive-until", "tag holding an ISO 8601 time to keep until"
)
SHUTDOWN_DRY_RUN: Setting[bool] = _setting(
    "SHUTDOWN_DRY_RUN", _parse_bool, "false", "decide and report but stop nothing"
)
SHUTDOWN_STOP_TIMEOUT_SECONDS: Setting[int] = _setting(
    "SHUTDOWN_STOP_TIMEOUT_SECONDS",
    _parse_int(1),
    "1200",
    "how long to wait for an instance to reach Stopped",
)
SHUTDOWN_POLL_SECONDS: Setting[int] = _setting(
    "SHUTDOWN_POLL_SECONDS", _parse_int(1), "30", "interval of the durable-timer state checks"
)
COMPUTE_SCHEDULES: Setting[str] = _setting(
    "COMPUTE_SCHEDULES",
    _parse_str,
    "",
    "named working-hours schedules, a JSON array of {name, timezone, periods: [{days, begin, end}], enforced} "
    "(checked by shared/compute/schedules.py, so a mistake is reported without stopping the shutdown job)",
)
SCHEDULE_TAG: Setting[str] = _setting(
    "SCHEDULE_TAG", _parse_str, "compute-schedule", "tag whose value names the schedule an instance follows"
)
UNKNOWN_SCHEDULE_POLICY: Setting[str] = _setting(
    "UNKNOWN_SCHEDULE_POLICY",
    _parse_choice("nightly", "skip"),
    "nightly",
    "what happens to an instance whose schedule tag names no schedule in COMPUTE_SCHEDULES: nightly (the nightly "
    "shutdown policy applies to it) or skip (nothing stops it); reports name the tag either way",
)
RECONCILE_TIMER: Setting[bool] = _setting(
    "RECONCILE_TIMER",
    _parse_bool,
    "true",
    "whether the reconciler's minute timer reconciles the schedules (false: only POST /api/reconcile does)",
)
PRICES_ENDPOINT: Setting[str] = _setting(
    "PRICES_ENDPOINT",
    _parse_str,
    "https://prices.azure.com/api/retail/prices",
    "Azure Retail Prices API endpoint (savings estimates)",
)
PRICES_REGION: Setting[str] = _setting(
    "PRICES_REGION", _parse_str, "westeurope", "ARM region whose retail prices value the compute instances"
)
PRICES_CURRENCY: Setting[str] = _setting(
    "PRICES_CURRENCY", _parse_str, "USD", "currency of the retail prices (USD is the billing truth)"
)
PRICE_OVERRIDES: Setting[str] = _setting(
    "PRICE_OVERRIDES", _parse_str, "", "JSON object vmSize -> hourly price, for negotiated rates"
)
AML_ARM_ENDPOINT: Setting[str] = _setting(
    "AML_ARM_ENDPOINT",
    _parse_str,
    "https://management.azure.com/",
    "Azure Resource Manager endpoint used by MLClient",
)
AML_POLLING_INTERVAL_SECONDS: Setting[float] = _setting(
    "AML_POLLING_INTERVAL_SECONDS", _parse_float(0.0), "5", "polling interval of long-running ARM operations"
)
AML_HTTP_RETRIES: Setting[int] = _setting(
    "AML_HTTP_RETRIES",
    _parse_int(0),
    "3",
    "retries of one ARM request on 408/429/5xx inside one activity call",
)
AML_HTTP_BACKOFF_SECONDS: Setting[float] = _setting(
    "AML_HTTP_BACKOFF_SECONDS",
    _parse_float(0.0),
    "1",
    "backoff factor of those retries (exponential, capped)",
)

# --- Heads-up before a stop, postponement links, measured savings (issue 23) ----------------------------
NOTICE_MINUTES: Setting[float] = _setting(
    "NOTICE_MINUTES",
    _parse_float_range(0.0, 1440.0),
    "30",
    "minutes between the heads-up to an instance's owner and its stop (decimal, e.g. 0.5; 0 = no heads-up); "
    "POST /api/shutdown's notice_minutes overrides it for one run",
)
OWNER_TAG: Setting[str] = _setting(
    "OWNER_TAG",
    _parse_str,
    "owner",
    "tag naming an instance's owner, who is told before a stop (else its creator from ARM, else the channels' "
    "default audience)",
)
NOTIFY_CHANNELS: Setting[str] = _setting(
    "NOTIFY_CHANNELS",
    _parse_str,
    "",
    "where heads-ups go: a JSON list of {name, kind: webhook|teams|slack|email, url | to, instances?} "
    "(email also: endpoint, sender); URLs and addresses may be Key Vault references; empty = no heads-up, stops "
    "happen at once (checked by shared/compute/channels.py)",
    secret=True,
)
POSTPONE_MAX_HOURS: Setting[float] = _setting(
    "POSTPONE_MAX_HOURS",
    _parse_float_range(1 / 60, 168.0),
    "12",
    "how far past its planned stop an owner may postpone an instance through the heads-up's link (hours)",
)
NOTICE_SIGNING_KEY: Setting[str] = _setting(
    "NOTICE_SIGNING_KEY",
    _parse_str,
    "",
    "HMAC key (32+ characters) signing the heads-up's links; a Key Vault reference in Azure, generated by devhost "
    "locally; required when NOTIFY_CHANNELS is set",
    secret=True,
)
NOTICE_LINK_BASE_URL: Setting[str] = _setting(
    "NOTICE_LINK_BASE_URL",
    _parse_str,
    "",
    "origin of the heads-up's links (e.g. https://ops.contoso.com); empty = https://{WEBSITE_HOSTNAME}",
)
WEBSITE_HOSTNAME: Setting[str] = _setting(
    "WEBSITE_HOSTNAME", _parse_str, "", "the app's host name, set by App Service (and by devhost)"
)

# --- Storage and batch scoring -------------------------------------------------------------------------
DATA_STORAGE: Setting[str] = _setting(
    "DATA_STORAGE",
    _parse_str,
    "",
    "connection string of the data storage account (local); in Azure use DATA_STORAGE__serviceUri",
    secret=True,
)
DATA_STORAGE_SERVICE_URI: Setting[str] = _setting(
    "DATA_STORAGE__serviceUri", _parse_str, "", "blob endpoint of the data storage account (identity-based)"
)
DATA_STORAGE_CLIENT_ID: Setting[str] = _setting(
    "DATA_STORAGE__clientId", _parse_str, "", "client id of the user-assigned identity used for storage"
)
SCORING_INPUT_CONTAINER: Setting[str] = _setting(
    "SCORING_INPUT_CONTAINER", _parse_container, "incoming", "container watched for CSV uploads"
)
SCORING_OUTPUT_CONTAINER: Setting[str] = _setting(
    "SCORING_OUTPUT_CONTAINER", _parse_container, "predictions", "container receiving predictions CSVs"
)
SCORING_ERRORS_CONTAINER: Setting[str] = _setting(
    "SCORING_ERRORS_CONTAINER", _parse_container, "scoring-errors", "container receiving bad-row CSVs"
)
SCORING_CHUNK_BYTES: Setting[int] = _setting(
    "SCORING_CHUNK_BYTES", _parse_int(1024), str(8 * 1024 * 1024), "target size of one scoring chunk"
)
SCORING_ERROR_THRESHOLD: Setting[int] = _setting(
    "SCORING_ERROR_THRESHOLD",
    _parse_int(-1),
    "-1",
    "bad rows tolerated before nothing is committed; -1 = no limit",
)
SCORING_WAVE_SIZE: Setting[int] = _setting(
    "SCORING_WAVE_SIZE",
    # A wave's history grows by about 1.6 KB a chunk (more with long blob names or headers): 256 keeps it far
    # under issue 20's bound of 1 MB for any history (docs/scaling.md).
    _parse_int(1, 256),
    "64",
    "chunks scored by one sub-orchestration; the scoring run's own history grows by about 1 KB a wave",
)
SCORING_PARALLEL_CHUNKS: Setting[int] = _setting(
    "SCORING_PARALLEL_CHUNKS",
    _parse_int(1),
    "4",
    "chunks of one file scored at once (worker memory grows with chunk size x this)",
)
SCORING_WORKER_MEMORY_MB: Setting[int] = _setting(
    "SCORING_WORKER_MEMORY_MB",
    _parse_int(64),
    "600",
    "memory budget of one worker process in MiB: it scores at most (budget - 200) // (11 x SCORING_CHUNK_BYTES "
    "in MiB) chunks at once, at least 1 (shared/scoring/chunk_slots.py)",
)
REPORTS_CONTAINER: Setting[str] = _setting(
    "REPORTS_CONTAINER", _parse_container, "reports", "container receiving shutdown reports"
)

# --- Model and real-time scoring ----------------------------------------------------------------------
MODEL_URI: Setting[str] = _setting(
    "MODEL_URI", _parse_str, DEFAULT_MODEL_URI, "model directory path, blob URL, or azureml:NAME:VERSION"
)
SCORE_MAX_BODY_BYTES: Setting[int] = _setting(
    "SCORE_MAX_BODY_BYTES", _parse_int(1), str(1024 * 1024), "largest body /api/score accepts"
)
MODEL_WORKSPACE: Setting[str] = _setting(
    "MODEL_WORKSPACE",
    _parse_str,
    "",
    "workspace of azureml:NAME:VERSION model URIs, 'subscription/resource-group/workspace'; "
    "empty = the first of AML_WORKSPACES",
)

# --- Key Vault and telemetry ---------------------------------------------------------------------------
KEYVAULT_REFRESH_SECONDS: Setting[int] = _setting(
    "KEYVAULT_REFRESH_SECONDS",
    _parse_int(0),
    str(24 * 3600),
    "how long a resolved Key Vault reference is cached",
)
APPLICATIONINSIGHTS_CONNECTION_STRING: Setting[str] = _setting(
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    _parse_str,
    "",
    "Application Insights connection string",
    secret=True,
)
OTEL_EXPORTER_OTLP_ENDPOINT: Setting[str] = _setting(
    "OTEL_EXPORTER_OTLP_ENDPOINT", _parse_str, "", "OTLP endpoint to export telemetry to when set"
)


@dataclass(frozen=True)
class ShutdownSettings:
    """What the shutdown starters and orchestration need, read together so a bad value fails at once."""

    workspaces: tuple[Workspace, ...]
    mode: str
    exempt_tag: str
    keep_alive_tag: str
    dry_run: bool
    stop_timeout_seconds: int
    poll_seconds: int
    schedule_tag: str = "compute-schedule"
    shutdown_schedule: str = "0 0 22 * * *"
    notice_minutes: float = 30.0
    # A malformed NOTICE_MINUTES only costs the heads-up: the runs stop without one and report this (never a
    # nightly shutdown refused over the lead time of its notices).
    notice_error: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShutdownSettings:
        try:
            notice_minutes, notice_error = NOTICE_MINUTES.get(env), None
        except SettingsError as err:
            notice_minutes, notice_error = 0.0, f"no heads-up was sent: {err}"
        return cls(
            workspaces=AML_WORKSPACES.get(env),
            mode=SHUTDOWN_MODE.get(env),
            exempt_tag=SHUTDOWN_EXEMPT_TAG.get(env),
            keep_alive_tag=SHUTDOWN_KEEP_ALIVE_TAG.get(env),
            dry_run=SHUTDOWN_DRY_RUN.get(env),
            stop_timeout_seconds=SHUTDOWN_STOP_TIMEOUT_SECONDS.get(env),
            poll_seconds=SHUTDOWN_POLL_SECONDS.get(env),
            schedule_tag=SCHEDULE_TAG.get(env),
            shutdown_schedule=SHUTDOWN_SCHEDULE.get(env),
            notice_minutes=notice_minutes,
            notice_error=notice_error,
        )


@dataclass(frozen=True)
class ScoringSettings:
    """Containers and limits of batch scoring."""

    input_container: str
    output_container: str
    errors_container: str
    chunk_bytes: int
    error_threshold: int
    wave_size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScoringSettings:
        return cls(
            input_container=SCORING_INPUT_CONTAINER.get(env),
            output_container=SCORING_OUTPUT_CONTAINER.get(env),
            errors_container=SCORING_ERRORS_CONTAINER.get(env),
            chunk_bytes=SCORING_CHUNK_BYTES.get(env),
            error_threshold=SCORING_ERROR_THRESHOLD.get(env),
            wave_size=SCORING_WAVE_SIZE.get(env),
        )
