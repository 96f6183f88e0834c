"""shared/compute.py: the real MLClient + DefaultAzureCredential against the ARM and identity stand-ins."""

import time

import pytest

from devhost.standins.arm import ArmStandin, load_fleet, workspace_keys
from devhost.standins.identity import IdentityStandin
from devhost.standins.tls import make_local_tls
from shared import azureml
from shared.compute import arm as compute
from shared.settings import Workspace
from tests.helpers.standins import use_identity_standin

FLEET = load_fleet()
RESEARCH, PROD = (Workspace.parse(k) for k in workspace_keys(FLEET))
STOP_ALICE = r"/computes/ci-alice/stop$"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def identity():
    with IdentityStandin() as standin:
        yield standin


@pytest.fixture
def arm(tls, identity, monkeypatch):
    """A fresh stand-in per test (own port, so own MLClient); the app reaches it through settings only."""
    standin = ArmStandin(FLEET, tls, transition_seconds=0.3, page_size=2, token_validator=identity.is_valid)
    base_url = standin.start()
    use_identity_standin(monkeypatch, identity, tls)
    monkeypatch.setenv("AML_ARM_ENDPOINT", base_url)
    monkeypatch.setenv("AML_POLLING_INTERVAL_SECONDS", "0.1")
    monkeypatch.setenv("AML_HTTP_RETRIES", "2")
    monkeypatch.setenv("AML_HTTP_BACKOFF_SECONDS", "0.05")
    yield standin
    standin.stop()


def wait_for_state(ws: Workspace, name: str, wanted: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    state = compute.get_state(ws, name)
    while state != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        state = compute.get_state(ws, name)
    return state


def test_list_follows_paging_and_keeps_only_compute_instances(arm):
    instances = compute.list_instances(RESEARCH)

    assert [i.name for i in instances] == ["ci-alice", "ci-bob-gpu", "ci-carol", "ci-dave", "ci-erin"]
    by_name = {i.name: i for i in instances}
    assert by_name["ci-dave"].state == "JobRunning"
    assert by_name["ci-bob-gpu"].tags["auto-shutdown"] == "off"
    assert by_name["ci-carol"].idle_shutdown_minutes == 30
    assert by_name["ci-alice"].workspace == RESEARCH.key
    # 6 computes (one is a cluster) in pages of 2: three list requests.
    assert len(arm.requests("GET", r"/ws-research/computes$")) == 3


def test_list_and_get_carry_the_creator_from_arm(arm):
    """ARM's `properties.properties.createdBy` reaches the app (azure-ai-ml's entity drops it): the heads-up before a
    stop goes to the creator when the instance has no owner tag."""
    creator = {"user_name": "Alice Martin", "user_org_id": "72f988bf-0000-4000-8000-00000000d001"}
    listed = {i.name: i for i in compute.list_instances(RESEARCH)}
    assert listed["ci-alice"].created_by is not None
    assert {k: listed["ci-alice"].created_by[k] for k in creator} == creator
    assert listed["ci-alice"].created_by["user_id"]
    assert compute.get_instance(RESEARCH, "ci-alice").created_by == listed["ci-alice"].created_by


def test_an_instance_arm_gives_no_creator_has_none(arm):
    arm.reload({**FLEET, "workspaces": [{**FLEET["workspaces"][0], "computes": [{"name": "ci-x"}]}]})
    assert compute.list_instances(RESEARCH)[0].created_by is None


def test_instances_round_trip_through_json(arm):
    for instance in compute.list_instances(PROD):
        assert compute.ComputeInstance.from_dict(instance.to_dict()) == instance


def test_stop_returns_at_once_and_the_instance_reaches_stopped(arm):
    # A transition long enough that "returned before Stopped" holds on a loaded CI machine too.
    arm.transition_seconds = 3.0
    started = time.monotonic()
    outcome = compute.begin_stop(RESEARCH, "ci-alice")
    assert time.monotonic() - started < arm.transition_seconds  # did not wait for the operation
    assert outcome.status == "stopping"
    assert outcome.state_before == "Running"
    assert compute.get_state(RESEARCH, "ci-alice") == "Stopping"
    assert wait_for_state(RESEARCH, "ci-alice", "Stopped", timeout=10) == "Stopped"
    assert arm.state_of("ws-research", "ci-alice") == "Stopped"


def test_already_stopped_is_success_without_a_stop_call(arm):
    outcome = compute.begin_stop(RESEARCH, "ci-carol")

    assert outcome.status == "already_stopped"
    assert arm.requests("POST") == []


def test_unknown_instance_is_not_found(arm):
    assert compute.begin_stop(RESEARCH, "ci-ghost").status == "not_found"
    with pytest.raises(compute.ComputeNotFoundError, match="ci-ghost"):
        compute.get_state(RESEARCH, "ci-ghost")


def test_deleted_between_read_and_stop_is_not_found(arm):
    arm.add_fault({"method": "POST", "path_regex": STOP_ALICE, "status": 404})

    outcome = compute.begin_stop(RESEARCH, "ci-alice")

    assert outcome.status == "not_found"
    assert "ci-alice" in outcome.message


def test_conflict_means_in_transition(arm):
    arm.add_fault(
        {
            "method": "POST",
            "path_regex": STOP_ALICE,
            "status": 409,
            "message": "Compute is in a transition state; retry later.",
        }
    )

    outcome = compute.begin_stop(RESEARCH, "ci-alice")

    assert outcome.status == "in_transition"
    assert "transition state" in outcome.message
    assert arm.state_of("ws-research", "ci-alice") == "Running"


def test_bad_request_fails_with_arms_message(arm):
    arm.add_fault(
        {
            "method": "POST",
            "path_regex": STOP_ALICE,
            "status": 400,
            "code": "UserError",
            "message": "StopCompute is not allowed when ComputeInstance disk is full.",
        }
    )

    outcome = compute.begin_stop(RESEARCH, "ci-alice")

    assert outcome.status == "failed"
    assert "StopCompute is not allowed when ComputeInstance disk is full." in outcome.message
    assert len(arm.requests("POST")) == 1  # a 400 is not retried


def test_throttled_stop_is_retried_after_retry_after(arm):
    arm.add_fault({"method": "POST", "path_regex": STOP_ALICE, "status": 429, "headers": {"Retry-After": "1"}})

    started = time.monotonic()
    outcome = compute.begin_stop(RESEARCH, "ci-alice")

    assert outcome.status == "stopping"
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in arm.requests("POST")] == [429, 202]


def test_throttled_list_is_retried(arm):
    arm.add_fault(
        {
            "method": "GET",
            "path_regex": r"/ws-prod/computes$",
            "status": 429,
            "headers": {"Retry-After": "0"},
            "count": 2,
        }
    )

    assert len(compute.list_instances(PROD)) == 6


def test_persistent_server_error_raises_retryable_within_bounded_time(arm):
    arm.add_fault({"method": "GET", "path_regex": r"/computes/ci-alice$", "status": 500, "count": None})

    started = time.monotonic()
    with pytest.raises(compute.RetryableComputeError, match="500"):
        compute.begin_stop(RESEARCH, "ci-alice")

    assert time.monotonic() - started < 15.0  # bounded (no unbounded retry), with room for a loaded CI machine
    assert len(arm.requests("GET", r"/computes/ci-alice$")) == 3  # 1 + AML_HTTP_RETRIES
    assert arm.state_of("ws-research", "ci-alice") == "Running"


def test_persistent_server_error_on_stop_is_retryable(arm):
    arm.add_fault({"method": "POST", "path_regex": STOP_ALICE, "status": 503, "count": None})

    with pytest.raises(compute.RetryableComputeError, match="503"):
        compute.begin_stop(RESEARCH, "ci-alice")


def test_listing_an_unknown_workspace_says_so(arm):
    with pytest.raises(compute.ComputeNotFoundError, match="ws-nowhere"):
        compute.list_instances(Workspace(RESEARCH.subscription_id, RESEARCH.resource_group, "ws-nowhere"))


def test_failed_stop_operation_shows_in_state_and_last_operation(arm):
    arm.add_fault(
        {
            "method": "POST",
            "path_regex": STOP_ALICE,
            "operation_status": "Failed",
            "message": "Stop failed: VM agent did not respond.",
        }
    )

    assert compute.begin_stop(RESEARCH, "ci-alice").status == "stopping"
    assert wait_for_state(RESEARCH, "ci-alice", "Running") == "Running"
    last = compute.get_instance(RESEARCH, "ci-alice").last_operation
    assert last is not None
    assert last["operation_name"] == "Stop"
    assert last["operation_status"] == "Failed"


def test_cloud_settings_point_mlclient_at_the_endpoint():
    assert azureml._cloud_kwargs("https://management.azure.com/") == {"cloud": "AzureCloud"}
    local = azureml._cloud_kwargs("https://127.0.0.1:8443")
    assert local["cloud_metadata"]["resource_manager"] == "https://127.0.0.1:8443/"
    assert local["cloud"] != azureml._cloud_kwargs("https://127.0.0.1:8444")["cloud"]


def test_requests_are_counted_on_the_wire_and_no_poller_outlives_the_stop(arm):
    from shared.arm_budget import counting

    arm.transition_seconds = 0.3
    with counting() as listed:
        alice = next(i for i in compute.list_instances(RESEARCH) if i.name == "ci-alice")
    assert listed.to_dict() == {"reads": 3, "writes": 0}  # three pages of 2
    with counting() as stopped:
        outcome = compute.begin_stop(RESEARCH, "ci-alice", state=alice.state)
    assert outcome.status == "stopping"
    assert stopped.to_dict() == {"reads": 0, "writes": 1}  # the listed state is trusted: no read before
    time.sleep(1.0)  # several polling intervals (0.1 s): a poller thread would have polled by now
    assert arm.requests("GET", r"computeOperationsStatus") == []
    assert arm.state_of("ws-research", "ci-alice") == "Stopped"


def test_start_is_accepted_and_a_quota_refusal_carries_arms_message(arm):
    arm.add_fault(
        {
            "method": "POST",
            "path_regex": r"/computes/ci-carol/start$",
            "status": 400,
            "code": "QuotaExceeded",
            "message": "Operation could not be completed as it results in exceeding approved standardDSv2Family "
            "Cores quota.",
        }
    )
    refused = compute.begin_start(RESEARCH, "ci-carol", state="Stopped")
    assert refused.status == "failed"
    assert "QuotaExceeded: Operation could not be completed" in refused.message
    assert compute.begin_start(RESEARCH, "ci-carol", state="Stopped").status == "starting"
    assert wait_for_state(RESEARCH, "ci-carol", "Running") == "Running"
    assert compute.begin_start(RESEARCH, "ci-alice", state="Running").status == "already_running"
