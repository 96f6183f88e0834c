"""Who may call the app, and what it lets slip: keys on every endpoint, the Event Grid handshake, no generic
starter, no secret or token in logs, statuses, reports or error bodies, and pinned dependencies."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import ACCOUNT_KEY, ACCOUNT_NAME, free_port
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.events import post_events, webhook_path
from tests.helpers.processes import worker_pids
from tests.helpers.storage import blob_service, upload
from tests.reliability import TestRecorder

pytestmark = pytest.mark.integration

WORKSPACES = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]["AML_WORKSPACES"]
VALIDATION = {
    "id": "v1",
    "topic": "t",
    "subject": "",
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2026-01-01T00:00:00Z",
    "data": {"validationCode": "code-123"},
    "dataVersion": "1",
}


def _app_functions() -> list[dict[str, Any]]:
    import function_app

    out = []
    for fn in function_app.app.get_functions():
        spec = json.loads(fn.get_function_json())
        trigger = next(b for b in spec["bindings"] if b["type"].endswith("Trigger"))
        out.append({"name": fn.get_function_name(), "trigger": trigger, "bindings": spec["bindings"]})
    return out


FUNCTIONS = _app_functions()
HTTP_FUNCTIONS = [f for f in FUNCTIONS if f["trigger"]["type"] == "httpTrigger"]


@pytest.fixture(scope="module")
def secrets_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHost, str]]:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    port = free_port()
    sas = generate_account_sas(
        ACCOUNT_NAME,
        ACCOUNT_KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )
    data_storage = f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT_NAME};SharedAccessSignature={sas}"
    settings = {
        "DATA_STORAGE": "@Microsoft.KeyVault(VaultName=dev;SecretName=data-storage)",
        "DEVHOST_KEYVAULT_SECRETS": json.dumps({"data-storage": data_storage}),
        "AML_WORKSPACES": WORKSPACES,
        "DEVHOST_ARM_FLEET": "devhost/standins/fleet.sample.json",
        "DEVHOST_ARM_TRANSITION_SECONDS": "0.5",
        "SHUTDOWN_POLL_SECONDS": "1",
        "AML_POLLING_INTERVAL_SECONDS": "0.2",
        "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",
    }
    host = start_devhost(tmp_path_factory.mktemp("security-devhost"), settings, workers=1, azurite_port=port)
    yield host, re.search(r"sig=([^&]+)", sas).group(1)  # type: ignore[union-attr]
    host.stop()


def _path(function: dict[str, Any]) -> str:
    route = function["trigger"].get("route") or function["name"]
    return "/api/" + re.sub(r"\{[^}]+\}", "x", route)


@pytest.mark.parametrize("function", HTTP_FUNCTIONS, ids=[f["name"] for f in HTTP_FUNCTIONS])
def test_every_http_function_but_health_refuses_calls_without_the_key(
    secrets_host: tuple[RunningHost, str], function: dict[str, Any], reliability: TestRecorder
) -> None:
    host, _ = secrets_host
    level = function["trigger"].get("authLevel", "function").lower()
    method = (function["trigger"].get("methods") or ["GET"])[0].upper()
    if function["name"] in ("health", "openapi"):  # liveness, and the API's contract (issue 16): public by design
        assert level == "anonymous"
        assert host.request(method, _path(function), key=False).status_code == 200
        return
    if function["name"] == "notice_link":  # issue 23: the signed token is the credential (links travel by mail)
        assert level == "anonymous"
        for verb in ("GET", "POST"):  # devhost generated NOTICE_SIGNING_KEY; "x" is no token it signed
            assert host.request(verb, _path(function), key=False, data=b"action=stop-now").status_code == 403
        return
    assert level in {"function", "admin"}, f"{function['name']} is {level}"
    tries = 0
    for headers in ({}, {"x-functions-key": "wrong"}, {"x-functions-key": ""}):
        response = host.request(method, _path(function), key=False, headers=headers, data=b"{}")
        tries += 1
        assert response.status_code == 401, (function["name"], headers, response.status_code)
    assert host.request(method, _path(function) + "?code=wrong", key=False).status_code == 401
    reliability.record(
        "security", f"{method} {_path(function)} without / with a wrong key", tries=tries + 1, outcome="401"
    )


def test_no_generic_starter_and_every_starter_needs_a_key(reliability: TestRecorder) -> None:
    for function in HTTP_FUNCTIONS:
        route = function["trigger"].get("route") or ""
        assert "functionName" not in route and "orchestrators/" not in route, route
        starts = any(b["type"] == "durableClient" for b in function["bindings"])
        # notice_link holds a Durable client only to raise the `notice` event on an orchestration the run started;
        # it starts nothing (issue 23: anonymous, the signed token is the credential; checked above).
        if starts and function["name"] != "notice_link":
            assert function["trigger"].get("authLevel", "").lower() == "function", function["name"]
    reliability.record(
        "security",
        "app functions enumerated: no `orchestrators/{functionName}` route, every starter at auth level function",
        tries=len(FUNCTIONS),
        outcome="none found",
    )


DURABLE_CALLS = [
    ("GET", "/runtime/webhooks/durabletask/instances"),
    ("GET", "/runtime/webhooks/durabletask/instances/abc"),
    ("POST", "/runtime/webhooks/durabletask/orchestrators/scoring_orchestrator"),
    ("POST", "/runtime/webhooks/durabletask/instances/abc/terminate"),
    ("DELETE", "/runtime/webhooks/durabletask/instances/abc"),
    ("POST", webhook_path()),
    ("OPTIONS", webhook_path()),
    ("GET", "/admin/host/status"),
]


def test_webhooks_refuse_calls_without_the_key(
    secrets_host: tuple[RunningHost, str], reliability: TestRecorder
) -> None:
    host, _ = secrets_host
    for method, path in DURABLE_CALLS:
        for headers in ({}, {"x-functions-key": "wrong"}):
            response = host.request(
                method,
                path,
                key=False,
                headers={**headers, "aeg-event-type": "SubscriptionValidation"},
                json=[VALIDATION],
            )
            assert response.status_code == 401, (method, path, response.status_code)
    # The host's internal client endpoint is reachable only with its random token.
    assert host.request("GET", "/_rpc/guess/durabletask/instances", key=False).status_code == 404
    reliability.record(
        "security",
        "Durable HTTP API, Event Grid webhook (POST, OPTIONS), host status without / with a wrong key",
        tries=len(DURABLE_CALLS) * 2 + 1,
        outcome="401 (404 for a guessed internal client URL)",
    )


HANDSHAKES: list[tuple[str, str, list[Any], int]] = [
    ("valid", "SubscriptionValidation", [VALIDATION], 200),
    ("validation event sent as Notification", "Notification", [VALIDATION], 400),
    ("two validation events", "SubscriptionValidation", [VALIDATION, VALIDATION], 400),
    ("no validationCode", "SubscriptionValidation", [{**VALIDATION, "data": {}}], 400),
    (
        "another event type",
        "SubscriptionValidation",
        [{**VALIDATION, "eventType": "Microsoft.Storage.BlobCreated"}],
        400,
    ),
    ("no header", "", [VALIDATION], 400),
]


@pytest.mark.parametrize(("case", "header", "body", "expected"), HANDSHAKES, ids=[h[0] for h in HANDSHAKES])
def test_the_validation_handshake_is_answered_only_as_specified(
    secrets_host: tuple[RunningHost, str],
    case: str,
    header: str,
    body: list[Any],
    expected: int,
    reliability: TestRecorder,
) -> None:
    host, _ = secrets_host
    response = post_events(host, body, event_type=header)
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json() == {"validationResponse": "code-123"}
    else:
        assert "validationResponse" not in response.text
    reliability.record("security", f"Event Grid validation handshake: {case}", tries=1, outcome=str(expected))


def _identity_header(host: RunningHost) -> str:
    for pid in worker_pids(host):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in env:
            if item.startswith(b"IDENTITY_HEADER="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError("no worker with IDENTITY_HEADER")


def test_no_secret_or_token_leaks_from_a_shutdown_and_a_scoring_run(
    secrets_host: tuple[RunningHost, str], reliability: TestRecorder
) -> None:
    host, sas_signature = secrets_host
    started = host.request("POST", "/api/shutdown", json={"dry_run": False})
    assert started.status_code == 202, started.text
    shutdown = host.wait_for_completion(started.json()["statusQueryGetUri"], timeout=90)
    assert shutdown["runtimeStatus"] == "Completed", shutdown

    upload(host, "secret/run.csv", b"id,height\n1,150\n2,x\n")
    svc = blob_service(host)
    scored = host.request("POST", "/api/scoring", json={"container": "incoming", "name": "secret/run.csv"})
    assert scored.status_code == 202, scored.text
    scoring = host.wait_for_completion(scored.json()["statusQueryGetUri"], timeout=90)
    assert scoring["runtimeStatus"] == "Completed", scoring
    errors = [
        host.request("POST", "/api/scoring", json={"container": "incoming", "name": "missing.csv"}).text,
        host.request("POST", "/api/shutdown", json={"workspaces": ["nope"]}).text,
        host.request("GET", "/runtime/webhooks/durabletask/instances/nope").text,
    ]
    time.sleep(0.5)
    reports = [
        svc.get_container_client("reports").download_blob(b.name).readall().decode()
        for b in svc.get_container_client("reports").list_blobs()
    ]
    assert reports, "the shutdown report was not saved"
    haystacks = {
        "log": host.log_text(),
        "shutdown status": json.dumps(shutdown),
        "scoring status": json.dumps(scoring),
        "reports": "\n".join(reports),
        "error bodies": "\n".join(errors),
    }
    identity_header = _identity_header(host)
    needles = {"SAS signature from Key Vault": sas_signature, "IDENTITY_HEADER": identity_header}
    for where, text in haystacks.items():
        for what, secret in needles.items():
            assert secret not in text, f"{what} appears in the {where}"
        assert "fake-mi-" not in text, f"a managed-identity token appears in the {where}"
        assert not re.search(r"Bearer\s+\S{12,}", text), f"a bearer token appears in the {where}"
    reliability.record(
        "security",
        "secrets and tokens in logs, statuses, saved report, error bodies (shutdown + scoring run, "
        "DATA_STORAGE from Key Vault)",
        tries=len(haystacks) * (len(needles) + 2),
        outcome="none found",
    )


def _locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a hashed lock (`make lock`); fails on any other requirement line."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.sub(r"\\\n", " ", path.read_text()).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", entry)
        assert match, f"{path.name}: {entry[:80]!r} is not name==version with its hashes"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        pins[name] = (match.group(2), match.group(3).count("--hash="))
    return pins


def test_dependencies_are_locked_with_hashes_and_the_environment_matches_the_lock(reliability: TestRecorder) -> None:
    runtime = _locked(APP_ROOT / "requirements.txt")
    dev = _locked(APP_ROOT / "requirements-dev.txt")
    # The dev environment runs exactly the runtime versions Azure installs.
    assert {name: dev.get(name) for name in runtime} == runtime
    unlocked = []
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in {"pip", "setuptools", "wheel"}:
            continue
        if dev.get(name, ("",))[0] != dist.version:
            unlocked.append(f"{name}=={dist.version} (lock: {dev.get(name, ('none',))[0]})")
    assert not unlocked, unlocked
    reliability.record(
        "security",
        "dependencies locked: requirements*.txt are name==version with sha256 hashes; installed set = the dev lock",
        tries=len(runtime) + len(dev),
        outcome="all locked",
    )
