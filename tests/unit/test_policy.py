"""The shutdown policy table: state x tags x mode x name patterns x dry run, each with its reason."""

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.compute.arm import ComputeInstance
from shared.compute.policy import decide, parse_time

NOW = datetime(2025, 3, 10, 22, 0, tzinfo=UTC)


def inst(state: str = "Running", name: str = "ci-alice", **tags: str) -> ComputeInstance:
    return ComputeInstance(
        workspace="sub/rg/ws", name=name, state=state, tags={k.replace("_", "-"): v for k, v in tags.items()}
    )


# (instance, options, expected action, words the reason must contain)
CASES: list[tuple[str, ComputeInstance, dict[str, Any], str, str]] = [
    ("running, no tags", inst(), {}, "stop", "Running"),
    ("dry run", inst(), {"dry_run": True}, "would_stop", "dry run"),
    ("stopped", inst("Stopped"), {}, "already_stopped", "already Stopped"),
    ("stopping", inst("Stopping"), {}, "already_stopped", "already Stopping"),
    ("stopped even if excluded", inst("Stopped"), {"exclude": ["ci-*"]}, "already_stopped", "Stopped"),
    ("job running", inst("JobRunning"), {}, "skip", "job is running"),
    ("job running, allowed", inst("JobRunning"), {"stop_job_running": True}, "stop", "JobRunning"),
    ("starting", inst("Starting"), {}, "skip", "Starting"),
    ("creating", inst("Creating"), {}, "skip", "transitional"),
    ("setup failed", inst("SetupFailed"), {}, "skip", "failed state"),
    ("unusable", inst("Unusable"), {}, "skip", "failed state"),
    ("unknown", inst("Unknown"), {}, "skip", "Unknown"),
    ("exempt off", inst(auto_shutdown="off"), {}, "skip", "exempt"),
    ("exempt FALSE, any case", inst(**{"Auto-Shutdown": "FALSE"}), {}, "skip", "exempt"),
    ("exempt value", inst(auto_shutdown="exempt"), {}, "skip", "exempt"),
    ("tag on in opt-out", inst(auto_shutdown="on"), {}, "stop", "opt-out"),
    ("odd tag value", inst(auto_shutdown="maybe"), {}, "stop", "not an exemption value"),
    ("custom exempt tag", inst(keep="off"), {"exempt_tag": "keep"}, "skip", "exempt"),
    ("opt-in untagged", inst(), {"mode": "opt-in"}, "skip", "not tagged"),
    ("opt-in off", inst(auto_shutdown="off"), {"mode": "opt-in"}, "skip", "opt-in"),
    ("opt-in on", inst(auto_shutdown="on"), {"mode": "opt-in"}, "stop", "opted in"),
    (
        "opt-in yes, dry",
        inst(auto_shutdown="yes"),
        {"mode": "opt-in", "dry_run": True},
        "would_stop",
        "dry run",
    ),
    (
        "follows a schedule",
        inst(compute_schedule="berlin-office"),
        {"schedule_tag": "compute-schedule"},
        "skip",
        "follows schedule berlin-office",
    ),
    (
        "follows a schedule, opt-in on",
        inst(**{"Compute-Schedule": "ny", "auto-shutdown": "on"}),
        {"schedule_tag": "compute-schedule", "mode": "opt-in"},
        "skip",
        "follows schedule ny",
    ),
    (
        "blank schedule tag: nightly policy",
        inst(compute_schedule=" "),
        {"schedule_tag": "compute-schedule"},
        "stop",
        "Running",
    ),
    ("keep-alive future", inst(keep_alive_until="2025-03-11T08:00:00Z"), {}, "skip", "kept alive until"),
    ("keep-alive offset", inst(keep_alive_until="2025-03-10T22:30:00+01:00"), {}, "stop", "expired"),
    ("keep-alive past", inst(keep_alive_until="2025-03-09T08:00:00Z"), {}, "stop", "expired"),
    ("keep-alive naive = UTC", inst(keep_alive_until="2025-03-10T22:30:00"), {}, "skip", "kept alive"),
    ("keep-alive date only", inst(keep_alive_until="2025-03-12"), {}, "skip", "kept alive"),
    ("keep-alive garbage", inst(keep_alive_until="tomorrow"), {}, "stop", "not honoured"),
    (
        "keep-alive in opt-in",
        inst(auto_shutdown="on", keep_alive_until="2099-01-01"),
        {"mode": "opt-in"},
        "skip",
        "kept alive",
    ),
    ("include matches", inst(name="gpu-bob"), {"include": ["gpu-*"]}, "stop", "Running"),
    ("include misses", inst(name="cpu-bob"), {"include": ["gpu-*"]}, "skip", "include patterns"),
    ("include case-insensitive", inst(name="GPU-Bob"), {"include": ["gpu-*"]}, "stop", "Running"),
    ("exclude matches", inst(name="ci-prod-1"), {"exclude": ["*prod*"]}, "skip", "'*prod*'"),
    (
        "exclude beats include",
        inst(name="gpu-prod"),
        {"include": ["gpu-*"], "exclude": ["*prod"]},
        "skip",
        "exclude",
    ),
    ("exclude before job state", inst("JobRunning", name="x"), {"exclude": ["x"]}, "skip", "exclude"),
]


@pytest.mark.parametrize(
    ("instance", "options", "action", "reason_has"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision_table(instance, options, action, reason_has):
    decision = decide(instance, now=NOW, **options)
    assert decision.action == action
    assert reason_has in decision.reason
    assert decision.stops == (action == "stop")


def test_every_decision_has_a_reason_and_round_trips():
    for _, instance, options, _, _ in CASES:
        decision = decide(instance, now=NOW, **options)
        assert decision.reason.strip()
        assert type(decision).from_dict(decision.to_dict()) == decision


def test_naive_now_is_taken_as_utc():
    naive = datetime(2025, 3, 10, 22, 0)
    assert decide(inst(keep_alive_until="2025-03-10T22:30:00Z"), now=naive).action == "skip"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-10T22:00:00Z", datetime(2025, 3, 10, 22, tzinfo=UTC)),
        ("2025-03-10T23:00:00+01:00", datetime(2025, 3, 10, 22, tzinfo=UTC)),
        ("2025-03-10T22:00:00", datetime(2025, 3, 10, 22, tzinfo=UTC)),
        ("2025-03-10", datetime(2025, 3, 10, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected
