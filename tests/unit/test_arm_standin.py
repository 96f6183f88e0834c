"""The ARM and identity stand-ins on the wire: paging, 202 + operation polling, transitions, auth, faults."""

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devhost.standins.arm import ArmStandin, generate_fleet, load_fleet, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import LocalTls, make_local_tls

API = "api-version=2023-08-01-preview"
FLEET = load_fleet()
RESEARCH = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}".format(
    *workspace_keys(FLEET)[0].split("/")
)
TOKEN = "any-token"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(tmp_path_factory.mktemp("arm-tls"))


@pytest.fixture
def arm(tls: LocalTls) -> Iterator[ArmStandin]:
    with ArmStandin(FLEET, tls, transition_seconds=0.3, page_size=4) as standin:
        yield standin


def call(
    arm: ArmStandin, tls: LocalTls, method: str, url: str, token: str | None = TOKEN
) -> tuple[int, dict[str, str], Any]:
    if not url.startswith("https://"):
        url = f"{arm.base_url}{url}{'&' if '?' in url else '?'}{API}"
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(tls.ca_bundle))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, dict(err.headers), json.loads(raw) if raw else None


def test_requests_without_a_bearer_token_are_refused(arm: ArmStandin, tls: LocalTls) -> None:
    status, _, body = call(arm, tls, "GET", f"{RESEARCH}/computes", token=None)
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"


def test_api_version_is_required(arm: ArmStandin, tls: LocalTls) -> None:
    status, _, body = call(arm, tls, "GET", f"{arm.base_url}{RESEARCH}/computes")
    assert status == 400
    assert body["error"]["code"] == "MissingApiVersionParameter"


def test_list_pages_with_next_link(arm: ArmStandin, tls: LocalTls) -> None:
    status, _, first = call(arm, tls, "GET", f"{RESEARCH}/computes")
    assert status == 200
    assert len(first["value"]) == 4
    status, _, second = call(arm, tls, "GET", first["nextLink"])
    assert "nextLink" not in second
    names = [c["name"] for c in first["value"] + second["value"]]
    assert names == ["ci-alice", "ci-bob-gpu", "ci-carol", "ci-dave", "ci-erin", "cpu-cluster"]
    alice = first["value"][0]
    assert alice["id"].endswith("/workspaces/ws-research/computes/ci-alice")
    assert alice["properties"]["computeType"] == "ComputeInstance"
    assert alice["properties"]["properties"]["state"] == "Running"
    assert alice["properties"]["properties"]["lastOperation"]["operationName"] == "Start"


def test_stop_answers_202_and_the_operation_completes(arm: ArmStandin, tls: LocalTls) -> None:
    status, headers, _ = call(arm, tls, "POST", f"{RESEARCH}/computes/ci-alice/stop")
    assert status == 202
    operation_url = headers["Azure-AsyncOperation"]
    assert call(arm, tls, "GET", operation_url)[2]["status"] == "InProgress"
    assert arm.state_of("ws-research", "ci-alice") == "Stopping"

    time.sleep(arm.transition_seconds + 0.05)

    assert call(arm, tls, "GET", operation_url)[2]["status"] == "Succeeded"
    _, _, alice = call(arm, tls, "GET", f"{RESEARCH}/computes/ci-alice")
    assert alice["properties"]["properties"]["state"] == "Stopped"
    assert alice["properties"]["properties"]["lastOperation"]["operationStatus"] == "Succeeded"


@pytest.mark.parametrize(
    ("name", "action", "status", "code"),
    [
        ("ci-alice", "start", 400, "StartComputeInstanceOnlyAllowedInStoppedState"),
        ("ci-ivan", "stop", 409, "Conflict"),  # Stopping: in transition
        ("ci-carol", "stop", 400, "UserError"),  # already stopped
        ("cpu-cluster", "stop", 400, "BadArgument"),
        ("ci-ghost", "stop", 404, "ResourceNotFound"),
    ],
)
def test_actions_refused_like_arm(
    arm: ArmStandin, tls: LocalTls, name: str, action: str, status: int, code: str
) -> None:
    if name == "ci-ivan":
        path = RESEARCH.replace("rg-ml-dev", "rg-ml-prod").replace("ws-research", "ws-prod")
    else:
        path = RESEARCH
    answer, _, body = call(arm, tls, "POST", f"{path}/computes/{name}/{action}")
    assert (answer, body["error"]["code"]) == (status, code)


def test_start_a_stopped_instance(arm: ArmStandin, tls: LocalTls) -> None:
    assert call(arm, tls, "POST", f"{RESEARCH}/computes/ci-carol/start")[0] == 202
    assert arm.state_of("ws-research", "ci-carol") == "Starting"
    time.sleep(arm.transition_seconds + 0.05)
    assert arm.state_of("ws-research", "ci-carol") == "Running"


def test_fault_rules_are_consumed_in_order(arm: ArmStandin, tls: LocalTls) -> None:
    arm.add_fault({"method": "GET", "path_regex": "ci-alice$", "status": 429, "headers": {"Retry-After": "7"}})
    arm.add_fault({"method": "GET", "path_regex": "ci-alice$", "status": 500, "count": 2})

    answers = [call(arm, tls, "GET", f"{RESEARCH}/computes/ci-alice") for _ in range(4)]

    assert [a[0] for a in answers] == [429, 500, 500, 200]
    assert answers[0][1]["Retry-After"] == "7"
    assert [r.status for r in arm.requests("GET", "ci-alice$")] == [429, 500, 500, 200]


def test_fault_delay_and_failed_operation(arm: ArmStandin, tls: LocalTls) -> None:
    arm.add_fault(
        {
            "method": "POST",
            "path_regex": "ci-alice/stop$",
            "delay_seconds": 0.3,
            "operation_status": "Failed",
            "message": "Stop failed: agent unreachable.",
        }
    )
    started = time.monotonic()
    status, headers, _ = call(arm, tls, "POST", f"{RESEARCH}/computes/ci-alice/stop")
    assert status == 202
    assert time.monotonic() - started >= 0.3

    time.sleep(arm.transition_seconds + 0.05)

    operation = call(arm, tls, "GET", headers["Azure-AsyncOperation"])[2]
    assert operation["status"] == "Failed"
    assert operation["error"]["message"] == "Stop failed: agent unreachable."
    assert arm.state_of("ws-research", "ci-alice") == "Running"


def test_persistent_fault_applies_forever(arm: ArmStandin, tls: LocalTls) -> None:
    arm.add_fault({"method": "POST", "path_regex": "ci-alice/stop$", "status": 500, "count": None})
    assert [call(arm, tls, "POST", f"{RESEARCH}/computes/ci-alice/stop")[0] for _ in range(3)] == [500] * 3
    assert call(arm, tls, "POST", f"{RESEARCH}/computes/ci-erin/stop")[0] == 202


def test_generated_fleet_for_benchmarks(tls: LocalTls) -> None:
    fleet = generate_fleet(workspaces=5, per_workspace=100)
    with ArmStandin(fleet, tls, page_size=100) as arm:
        states = arm.states()
    assert len(states) == 500
    assert {key for key, _ in states} == set(workspace_keys(fleet))
    assert set(states.values()) == {"Running"}


def test_identity_endpoint_issues_tokens_the_arm_standin_accepts(tls: LocalTls) -> None:
    with IdentityStandin() as identity, ArmStandin(FLEET, tls, token_validator=identity.is_valid) as arm:
        url = f"{identity.endpoint}?api-version=2019-08-01&resource={arm.base_url}"
        refused = urllib.request.Request(url)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(refused, timeout=5)
        assert err.value.code == 401

        accepted = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": identity.header_secret})
        with urllib.request.urlopen(accepted, timeout=5) as response:
            token = json.loads(response.read())
        assert token["token_type"] == "Bearer"
        assert int(token["expires_on"]) > time.time()

        assert call(arm, tls, "GET", f"{RESEARCH}/computes", token="made-up")[0] == 401
        assert call(arm, tls, "GET", f"{RESEARCH}/computes", token=token["access_token"])[0] == 200


def test_arm_buckets_throttle_writes_per_subscription_with_retry_after(tls: LocalTls) -> None:
    fleet = generate_fleet(workspaces=1, per_workspace=600)
    ws = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}".format(
        *workspace_keys(fleet)[0].split("/")
    )
    with ArmStandin(fleet, tls, transition_seconds=60, page_size=1000, throttle="arm") as arm:
        started = time.monotonic()
        answers = []
        for i in range(600):
            answers.append(call(arm, tls, "POST", f"{ws}/computes/ci-00-{i:04d}/stop"))
            if answers[-1][0] != 202:
                break
        elapsed = time.monotonic() - started
        accepted = len(answers) - 1
        # 200 at once, then the 10 per second refilled while the requests went out.
        assert 200 <= accepted <= 200 + 10 * elapsed + 1
        assert answers[0][1]["x-ms-ratelimit-remaining-subscription-writes"] == "199"
        status, headers, body = answers[-1]
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
        assert body["error"]["code"] == "SubscriptionRequestsThrottled"
        # Reads have their own bucket; 0.15 s later a write token is back (10 per second).
        status, headers, _ = call(arm, tls, "GET", f"{ws}/computes")
        assert status == 200 and int(headers["x-ms-ratelimit-remaining-subscription-reads"]) == 249
        time.sleep(0.15)
        assert call(arm, tls, "POST", f"{ws}/computes/ci-00-0599/stop")[0] == 202
        assert arm.request_counts() == {"reads": 1, "writes": accepted + 2}


def test_without_throttle_there_is_no_limit(tls: LocalTls) -> None:
    fleet = generate_fleet(workspaces=1, per_workspace=3)
    ws = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}".format(
        *workspace_keys(fleet)[0].split("/")
    )
    with ArmStandin(fleet, tls, page_size=500) as arm:
        statuses = {call(arm, tls, "GET", f"{ws}/computes")[0] for _ in range(300)}
        assert statuses == {200}
    with pytest.raises(ValueError, match="throttle"):
        ArmStandin(fleet, tls, throttle="sometimes")


def test_start_goes_through_starting_to_running(arm: ArmStandin, tls: LocalTls) -> None:
    status, headers, _ = call(arm, tls, "POST", f"{RESEARCH}/computes/ci-carol/start")
    assert status == 202 and "Azure-AsyncOperation" in headers
    assert arm.state_of("ws-research", "ci-carol") == "Starting"
    time.sleep(0.5)
    assert arm.state_of("ws-research", "ci-carol") == "Running"


def test_a_request_that_read_the_clock_before_another_takes_no_refill_back() -> None:
    """Requests read the clock before taking the stand-in's lock, so they may reach the bucket out of order; ARM
    never answers 429 for that, and neither may its stand-in (a spurious 429 costs the app a second request)."""
    from devhost.standins.arm import _Bucket

    bucket = _Bucket(capacity=200.0, refill=10.0, tokens=0.0, updated=100.0)
    assert bucket.take(100.2) is None  # two tokens refilled, one taken
    assert bucket.take(100.15) is None  # an earlier instant, arriving late: the other token is still there
