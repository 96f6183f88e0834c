"""The deployment scripts' own logic against local stand-ins: bounded retries that say what they wait for, the
no-build deploy call and its proof, the Event Grid hook warming the app and retrying the handshake, the custom role
created and awaited before the template assigns it, and the wait for new role assignments to take effect.

`az` and `azd` are command-line fakes (tests/helpers/fake_cli.py); the app's SCM endpoint and /api/health are
loopback HTTP stand-ins.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers.fake_cli import FakeCli, env_with, fail, install, ok

ROOT = Path(__file__).resolve().parents[2]
WITH_RETRIES = ROOT / "scripts" / "with-retries.sh"


def _run(script: Path, *args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- A loopback HTTP stand-in whose answers a test scripts --------------------------------------------------

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, str]]


class StandIn:
    """Answers every request with `handler(method, path, headers, body)`; records the requests."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append({"method": self.command, "path": self.path, "headers": headers, "body": body})
                status, text = handler(self.command, self.path, headers, body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def standins() -> Iterator[list[StandIn]]:
    started: list[StandIn] = []
    yield started
    for standin in started:
        standin.close()


def _serve(standins: list[StandIn], handler: Handler) -> StandIn:
    standin = StandIn(handler)
    standins.append(standin)
    return standin


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


# --- scripts/with-retries.sh ---------------------------------------------------------------------------------


def _flaky(tmp_path: Path, failures: int, message: str) -> Path:
    """A command that fails `failures` times saying `message`, then succeeds printing 'done'."""
    script = tmp_path / "flaky.sh"
    script.write_text(
        f'n=$(cat "{tmp_path}/n" 2>/dev/null || echo 0); echo $((n + 1)) > "{tmp_path}/n"\n'
        f'if [ "$n" -lt {failures} ]; then echo "{message}" >&2; exit 3; fi\necho done\n'
    )
    return script


def test_with_retries_waits_while_the_failure_is_one_time_fixes(tmp_path: Path, bin_dir: Path) -> None:
    flaky = _flaky(tmp_path, 2, "ERROR: (RoleDefinitionDoesNotExist) The specified role definition does not exist.")
    started = time.monotonic()
    result = _run(
        WITH_RETRIES,
        *("--attempts", "4", "--delay", "1", "--retry-on", "RoleDefinitionDoesNotExist"),
        *("--waiting-for", "the role to propagate", "--", "bash", str(flaky)),
        env=env_with(bin_dir),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    waits = [line for line in result.stderr.splitlines() if line.startswith("with-retries: attempt")]
    assert len(waits) == 2
    assert "attempt 1/4 of bash failed ((RoleDefinitionDoesNotExist)" in result.stderr.replace("ERROR: ", "")
    assert all("waiting" in line and "for the role to propagate" in line for line in waits)
    assert "waiting 1 s" in waits[0] and "waiting 2 s" in waits[1]  # backoff doubles
    assert time.monotonic() - started >= 3


def test_with_retries_does_not_wait_on_an_error_that_waiting_does_not_fix(tmp_path: Path, bin_dir: Path) -> None:
    flaky = _flaky(tmp_path, 5, "ERROR: (AuthorizationFailed) The client does not have authorization")
    result = _run(
        WITH_RETRIES,
        *("--attempts", "4", "--delay", "1", "--retry-on", "RoleDefinitionDoesNotExist"),
        *("--waiting-for", "the role", "--", "bash", str(flaky)),
        env=env_with(bin_dir),
    )
    assert result.returncode == 3
    assert (tmp_path / "n").read_text().strip() == "1"
    assert "with an error that waiting does not fix; not retrying" in result.stderr
    assert "AuthorizationFailed" in result.stderr  # the command's own words are passed through


def test_with_retries_is_bounded(tmp_path: Path, bin_dir: Path) -> None:
    flaky = _flaky(tmp_path, 10, "503 Service Unavailable")
    result = _run(
        WITH_RETRIES,
        *("--attempts", "3", "--delay", "0", "--waiting-for", "the host", "--stream", "--", "bash", str(flaky)),
        env=env_with(bin_dir),
    )
    assert result.returncode == 3
    assert (tmp_path / "n").read_text().strip() == "3"
    assert "still failing after 3 attempts; gave up waiting for the host" in result.stderr


# --- scripts/deploy-package.sh -------------------------------------------------------------------------------

DEPLOY = ROOT / "scripts" / "deploy-package.sh"
TOKEN = "fake-arm-token-123"


def _logged_in_az(bin_dir: Path) -> FakeCli:
    az = install(bin_dir, "az")
    az.answer("account show", ok("00000000-0000-0000-0000-000000000001\n"))
    az.answer("account get-access-token", ok(TOKEN + "\n"))
    return az


def _scm(standins: list[StandIn], deployments: list[list[dict[str, Any]]]) -> StandIn:
    """The app's SCM site: each upload starts the next deployment, whose records are served one per poll."""
    uploads: list[int] = []
    polls: dict[int, int] = {}

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        if method == "POST" and path.startswith("/api/publish"):
            uploads.append(len(body))
            return 202, json.dumps(f"deployment-{len(uploads)}")
        if method == "GET" and path.startswith("/api/deployments/deployment-"):
            number = int(path.rsplit("-", 1)[1])
            records = deployments[number - 1]
            polled = polls.get(number, 0)
            polls[number] = polled + 1
            return 200, json.dumps(records[min(polled, len(records) - 1)])
        return 404, "{}"

    return _serve(standins, handler)


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "app.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18) + b"the tested package")
    return package


def _deploy_env(bin_dir: Path, scm: StandIn) -> dict[str, str]:
    return env_with(
        bin_dir, SCM_BASE_URL=scm.url, DEPLOY_RETRY_DELAY="1", DEPLOY_POLL_SECONDS="0.1", DEPLOY_TIMEOUT="20"
    )


def test_deploy_ships_the_package_as_is_and_retries_while_the_identity_cannot_write_it(
    tmp_path: Path, bin_dir: Path, standins: list[StandIn]
) -> None:
    _logged_in_az(bin_dir)
    forbidden = (
        "Failed to upload blob package to storage account with Error: Response status code does not indicate "
        "success: 403 (This request is not authorized to perform this operation.)."
    )
    scm = _scm(
        standins,
        [
            [{"status": 1}, {"status": 3, "status_text": forbidden, "log_url": "https://scm/log/1"}],
            [{"status": 2}, {"status": 4, "status_text": "Deployment successful.", "remoteBuild": False}],
        ],
    )
    package = _package(tmp_path)
    result = _run(DEPLOY, "func-app", "rg-app", str(package), env=_deploy_env(bin_dir, scm))
    assert result.returncode == 0, result.stderr
    uploads = [r for r in scm.requests if r["method"] == "POST"]
    assert len(uploads) == 2
    for upload in uploads:
        query = parse_qs(urlsplit(upload["path"]).query)
        assert query["RemoteBuild"] == ["false"]
        assert upload["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert upload["headers"]["content-type"] == "application/zip"
        assert hashlib.sha256(upload["body"]).digest() == hashlib.sha256(package.read_bytes()).digest()
    assert "attempt 1/6 failed (deployment deployment-1 ended with status 3: Failed to upload" in result.stderr
    assert "waiting 1 s for the app's identity to be allowed to write the package" in result.stderr
    assert "deployment deployment-2 succeeded without a remote build" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_deploy_refuses_a_deployment_the_platform_built_remotely(
    tmp_path: Path, bin_dir: Path, standins: list[StandIn]
) -> None:
    _logged_in_az(bin_dir)
    scm = _scm(standins, [[{"status": 4, "status_text": "Deployment successful.", "remoteBuild": True}]])
    result = _run(DEPLOY, "func-app", "rg-app", str(_package(tmp_path)), env=_deploy_env(bin_dir, scm))
    assert result.returncode == 1
    assert "ran a remote build although RemoteBuild=false was asked; not the tested package" in result.stderr


def test_deploy_does_not_retry_a_failure_that_waiting_does_not_fix(
    tmp_path: Path, bin_dir: Path, standins: list[StandIn]
) -> None:
    _logged_in_az(bin_dir)
    broken = "Deployment failed: the package has no host.json"
    scm = _scm(standins, [[{"status": 3, "status_text": broken, "log_url": "https://scm/log/1"}]])
    result = _run(DEPLOY, "func-app", "rg-app", str(_package(tmp_path)), env=_deploy_env(bin_dir, scm))
    assert result.returncode == 1
    assert len([r for r in scm.requests if r["method"] == "POST"]) == 1
    assert f"deployment deployment-1 ended with status 3: {broken} (log: https://scm/log/1)" in result.stderr


def test_deploy_says_so_when_az_is_not_logged_in(tmp_path: Path, bin_dir: Path) -> None:
    az = install(bin_dir, "az").answer("account show", fail("ERROR: Please run 'az login' to setup account."))
    result = _run(DEPLOY, "func-app", "rg-app", str(_package(tmp_path)), env=env_with(bin_dir))
    assert result.returncode == 2
    assert "az is not logged in (az login, or azure/login in CI)" in result.stderr
    assert [c["args"][:2] for c in az.calls()] == [["account", "show"]]


# --- infra/hooks/postdeploy.sh -------------------------------------------------------------------------------

POSTDEPLOY = ROOT / "infra" / "hooks" / "postdeploy.sh"
EVENTGRID_KEY = "eg-system-key-SECRET-42"
HOOK_OUTPUTS = {
    "AZURE_RESOURCE_GROUP": "rg-app",
    "AZURE_FUNCTION_APP_NAME": "func-app",
    "EVENT_GRID_SYSTEM_TOPIC_NAME": "evgt-data",
    "DATA_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/st",
    "SCORING_INPUT_CONTAINER": "incoming",
    "EVENT_GRID_DEADLETTER_CONTAINER": "eventgrid-deadletter",
}


def _cold_app(standins: list[StandIn], unavailable: int) -> StandIn:
    """/api/health answering 503 `unavailable` times (a host still starting), then 200."""
    count = {"n": 0}

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        count["n"] += 1
        return (503, "{}") if count["n"] <= unavailable else (200, '{"status": "ok"}')

    return _serve(standins, handler)


def test_postdeploy_warms_the_app_waits_for_the_key_and_retries_the_handshake(
    bin_dir: Path, standins: list[StandIn]
) -> None:
    app = _cold_app(standins, unavailable=2)
    az = install(bin_dir, "az")
    az.answer("account show", ok("sub-123\n"))
    az.answer("functionapp show", ok("func-app.azurewebsites.net\n"))
    az.answer("functionapp keys list", ok("\n"), ok(EVENTGRID_KEY + "\n"))
    az.answer("functionapp function list", ok())
    handshake = (
        'ERROR: Bad Request({"error":{"code":"Url validation","message":"Webhook validation handshake failed '
        "for https://func-app.azurewebsites.net/runtime/webhooks/eventgrid"
        f"?functionName=on_blob_created&code={EVENTGRID_KEY}. "
        'Http POST request failed with response code Unknown."}})\n'
    )
    az.answer("rest --method put", fail(handshake), ok())
    az.answer("rest --method get", ok("Succeeded\n"))
    env = env_with(
        bin_dir,
        **HOOK_OUTPUTS,
        AZURE_FUNCTION_APP_URL=app.url,
        RETRY_DELAY="1",
        WARM_WAIT_SECONDS="10",
        KEY_WAIT_SECONDS="10",
    )
    result = _run(POSTDEPLOY, env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert EVENTGRID_KEY not in output and "code=***" in output  # the key is masked even in az's own error
    # Warmed: polled /api/health until it answered, saying what it waited for.
    assert len(app.requests) == 3 and all(r["path"] == "/api/health" for r in app.requests)
    assert "waiting 1 s for func-app to start and answer /api/health" in result.stderr
    assert "to create its eventgrid_extension system key" in result.stdout
    # The handshake failed once and the PUT was retried with the same body, which carries the key.
    puts = az.calls("rest --method put")
    assert len(puts) == 2
    assert "waiting 1 s for the host of func-app to answer Event Grid's validation handshake" in result.stderr
    endpoint = json.loads(puts[-1]["body"])["properties"]["destination"]["properties"]["endpointUrl"]
    assert endpoint.endswith(f"functionName=on_blob_created&code={EVENTGRID_KEY}")
    assert "is ready (incoming/*.csv -> on_blob_created)" in result.stdout


def test_postdeploy_checks_the_az_login_before_anything_else(bin_dir: Path) -> None:
    az = install(bin_dir, "az").answer("account show", fail("ERROR: Please run 'az login' to setup account."))
    result = _run(POSTDEPLOY, env=env_with(bin_dir, **HOOK_OUTPUTS))
    assert result.returncode == 1
    assert "az is not logged in: run 'az login'" in result.stderr
    assert len(az.calls()) == 1


def test_postdeploy_gives_up_on_a_cold_app_within_its_limit(bin_dir: Path, standins: list[StandIn]) -> None:
    app = _cold_app(standins, unavailable=100)
    install(bin_dir, "az").answer("account show", ok("sub\n")).answer("functionapp show", ok("h\n"))
    env = env_with(bin_dir, **HOOK_OUTPUTS, AZURE_FUNCTION_APP_URL=app.url, RETRY_DELAY="1", WARM_WAIT_SECONDS="3")
    result = _run(POSTDEPLOY, env=env)
    assert result.returncode != 0
    assert "gave up waiting for func-app to start and answer /api/health" in result.stderr
    assert len(app.requests) == 3


# --- infra/hooks/preprovision.sh -----------------------------------------------------------------------------

PREPROVISION = ROOT / "infra" / "hooks" / "preprovision.sh"
SUBSCRIPTION = "6b1d4c1e-3f2a-4c55-9e21-5a0d7c3e9f10"
OTHER_SUBSCRIPTION = "7c2e5d2f-4a3b-4d66-8f32-6b1e8d4f0a21"
WORKSPACE_ID = "/resourceGroups/rg-x/providers/Microsoft.MachineLearningServices/workspaces/ws-b"
WORKSPACES = f"{SUBSCRIPTION}/rg-ml/ws-a,/subscriptions/{OTHER_SUBSCRIPTION}{WORKSPACE_ID}"


def _role_id() -> str:
    # ARM guid(subscription().id, environmentName, 'aml-compute-instance-stopper'), as main.bicep computes it.
    name = f"/subscriptions/{SUBSCRIPTION}-aml-ops-prod-aml-compute-instance-stopper"
    return str(uuid.uuid5(uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830"), name))


def _provision_env(bin_dir: Path, **values: str) -> dict[str, str]:
    return env_with(
        bin_dir,
        AZURE_ENV_NAME="aml-ops-prod",
        AZURE_SUBSCRIPTION_ID=SUBSCRIPTION,
        AML_WORKSPACES=WORKSPACES,
        ROLE_WAIT_DELAY="1",
        **values,
    )


def test_preprovision_writes_the_custom_role_and_waits_until_every_subscription_sees_it(bin_dir: Path) -> None:
    az = install(bin_dir, "az").answer("account show", ok(SUBSCRIPTION + "\n")).answer("rest --method put", ok())
    not_yet = fail("ERROR: (RoleDefinitionDoesNotExist) The specified role definition with ID 'x' does not exist.")
    az.answer(f"rest --method get --uri https://management.azure.com/subscriptions/{SUBSCRIPTION}/*", ok())
    az.answer(
        f"rest --method get --uri https://management.azure.com/subscriptions/{OTHER_SUBSCRIPTION}/*",
        not_yet,
        not_yet,
        ok(),
    )
    azd = install(bin_dir, "azd").answer("env get-values", ok()).answer("env set", ok())
    result = _run(PREPROVISION, env=_provision_env(bin_dir))
    assert result.returncode == 0, result.stderr
    role_id = _role_id()
    (put,) = az.calls("rest --method put")
    assert put["args"][put["args"].index("--uri") + 1].endswith(f"/roleDefinitions/{role_id}?api-version=2022-04-01")
    role = json.loads(put["body"])["properties"]
    assert role["roleName"] == f"AML Compute Instance Scheduler (aml-ops-prod, {role_id[:8]})"
    assert role["assignableScopes"] == [f"/subscriptions/{SUBSCRIPTION}", f"/subscriptions/{OTHER_SUBSCRIPTION}"]
    assert role["permissions"][0]["actions"] == json.loads((ROOT / "infra" / "aml-role.json").read_text())["actions"]
    waits = [line for line in result.stderr.splitlines() if "with-retries: attempt" in line]
    assert len(waits) == 2 and all(f"to be visible in {OTHER_SUBSCRIPTION}" in line for line in waits)
    # The template assigns exactly this role.
    assert azd.calls("env set")[-1]["args"] == ["env", "set", "AML_ROLE_GUID", role_id]


def test_preprovision_falls_back_to_the_builtin_role_only_when_asked(bin_dir: Path) -> None:
    forbidden = fail(
        "ERROR: (AuthorizationFailed) The client does not have authorization to perform action "
        "'Microsoft.Authorization/roleDefinitions/write'"
    )
    az = install(bin_dir, "az").answer("account show", ok(SUBSCRIPTION + "\n")).answer("rest --method put", forbidden)
    azd = install(bin_dir, "azd").answer("env get-values", ok()).answer("env set", ok())

    result = _run(PREPROVISION, env=_provision_env(bin_dir))
    assert result.returncode == 1
    assert "azd env set AML_ROLE_MODE builtin" in result.stderr and not azd.calls("env set")
    assert len(az.calls("rest --method put")) == 1  # not an error that waiting fixes

    result = _run(PREPROVISION, env=_provision_env(bin_dir, AML_ROLE_FALLBACK="builtin"))
    assert result.returncode == 0, result.stderr
    assert "switching AML_ROLE_MODE to builtin" in result.stderr and "also allows creating, deleting" in result.stderr
    assert azd.calls("env set")[-1]["args"] == ["env", "set", "AML_ROLE_MODE", "builtin"]


@pytest.mark.parametrize("values", [{"AML_ROLE_MODE": "builtin"}, {"PROVISION_PREVIEW": "true"}])
def test_preprovision_changes_nothing_for_the_builtin_role_or_a_preview(bin_dir: Path, values: dict[str, str]) -> None:
    az = install(bin_dir, "az")
    result = _run(PREPROVISION, env=_provision_env(bin_dir, **values))
    assert result.returncode == 0, result.stderr
    assert az.calls() == []


# --- infra/hooks/postprovision.sh ----------------------------------------------------------------------------

POSTPROVISION = ROOT / "infra" / "hooks" / "postprovision.sh"


def _assigned(bin_dir: Path, seconds_ago: float | None) -> FakeCli:
    az = install(bin_dir, "az").answer("account show", ok("sub\n"))
    az.answer(
        "storage account show",
        ok("/subscriptions/sub/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/stapp\n"),
    )
    created = "" if seconds_ago is None else (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    return az.answer("role assignment list", ok(created + "\n"))


def _postprovision_env(bin_dir: Path, settle: int = 4) -> dict[str, str]:
    return env_with(
        bin_dir,
        AZURE_RESOURCE_GROUP="rg-app",
        HOST_STORAGE_ACCOUNT_NAME="stapp",
        AZURE_MANAGED_IDENTITY_CLIENT_ID="client-id",
        RBAC_SETTLE_SECONDS=str(settle),
        RBAC_SETTLE_STEP="1",
    )


def test_postprovision_lets_fresh_role_assignments_take_effect_before_the_deploy(bin_dir: Path) -> None:
    az = _assigned(bin_dir, seconds_ago=1)
    started = time.monotonic()
    result = _run(POSTPROVISION, env=_postprovision_env(bin_dir, settle=6))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 3  # it waited for the rest of the 6 s, whatever the fakes cost
    waits = [line for line in result.stdout.splitlines() if line.startswith("postprovision: waiting")]
    assert len(waits) >= 3
    assert re.search(r"for the app identity's roles on stapp, assigned \d s ago, to take effect", waits[0])
    (listed,) = az.calls("role assignment list")
    assert "client-id" in listed["args"] and "max_by([], &createdOn).createdOn" in listed["args"]


def test_postprovision_does_not_wait_for_old_assignments(bin_dir: Path) -> None:
    _assigned(bin_dir, seconds_ago=3600)
    result = _run(POSTPROVISION, env=_postprovision_env(bin_dir))
    assert result.returncode == 0, result.stderr
    assert "waiting" not in result.stdout


def test_postprovision_stops_when_the_identity_has_no_role(bin_dir: Path) -> None:
    _assigned(bin_dir, seconds_ago=None)
    result = _run(POSTPROVISION, env=_postprovision_env(bin_dir))
    assert result.returncode == 1
    assert "the app's identity has no role on stapp" in result.stderr


# --- scripts/provision.sh ------------------------------------------------------------------------------------


def test_provision_retries_what_propagation_fixes_and_nothing_else(bin_dir: Path) -> None:
    azd = install(bin_dir, "azd").answer(
        "provision",
        fail("ERROR: deployment failed: RoleAssignmentScopeNotAssignableToRoleDefinition: the role is not assignable"),
        ok("SUCCESS: Your application was provisioned in Azure\n"),
    )
    result = _run(ROOT / "scripts" / "provision.sh", env=env_with(bin_dir, PROVISION_RETRY_DELAY="0"))
    assert result.returncode == 0, result.stderr
    assert [c["args"] for c in azd.calls("provision")] == [["provision", "--no-prompt"]] * 2
    assert "waiting 0 s for new identities, role definitions and role assignments" in result.stderr

    quota = install(bin_dir, "azd").answer("provision", fail("ERROR: InsufficientQuota for Flex Consumption"))
    result = _run(ROOT / "scripts" / "provision.sh", env=env_with(bin_dir, PROVISION_RETRY_DELAY="0"))
    assert result.returncode == 1 and len(quota.calls("provision")) == 1
