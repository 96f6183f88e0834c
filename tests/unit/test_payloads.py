"""The one payload pattern of the compute side: dataclasses with `Payload.to_dict` / `from_dict`."""

from __future__ import annotations

import json

import pytest

from shared.arm_budget import RequestCounts
from shared.compute.arm import ComputeInstance, StopOutcome
from shared.compute.ledger import Ledger, LedgerItem
from shared.compute.policy import Decision
from shared.compute.prices import Price
from shared.compute.reconcile import ReconcileRun
from shared.compute.reconcile_open import Opened, OpenRequest
from shared.compute.report import InstanceResult, WorkspaceResult
from shared.compute.report_assembly import AssembleRequest
from shared.compute.run_summary import Tally
from shared.compute.schedules import ScheduleDecision
from shared.compute.shutdown_run import ShutdownRun
from shared.compute.workspace_finish import FinishRequest
from shared.compute.workspace_plan import PlanRequest, WorkspacePlan
from shared.compute.workspace_step import StepAnswer
from shared.payloads import Payload, PayloadError

PAYLOADS = [
    ComputeInstance,
    Ledger,
    LedgerItem,
    Tally,
    PlanRequest,
    WorkspacePlan,
    StepAnswer,
    FinishRequest,
    AssembleRequest,
    OpenRequest,
    Opened,
    RequestCounts,
    StopOutcome,
    Decision,
    Price,
    ReconcileRun,
    ScheduleDecision,
    InstanceResult,
    WorkspaceResult,
    ShutdownRun,
]


@pytest.mark.parametrize("cls", PAYLOADS, ids=lambda c: c.__name__)
def test_every_compute_side_payload_uses_the_one_pattern(cls: type):
    assert issubclass(cls, Payload)
    assert "from_dict" not in vars(cls), f"{cls.__name__} converts by hand instead of through Payload"


def test_a_run_input_round_trips_through_json_with_its_keys_in_field_order():
    run = ShutdownRun(("sub/rg/ws",), True, "opt-in", "auto-shutdown", "keep-alive-until", 600, 15, ("ci-*",))
    data = json.loads(json.dumps(run.to_dict()))
    assert list(data)[:3] == ["workspaces", "dry_run", "mode"]
    assert data["include"] == ["ci-*"] and data["trace"] == {}
    assert ShutdownRun.from_dict(data) == run


def test_an_instance_listed_without_tags_or_operation_reads_back_with_the_defaults():
    instance = ComputeInstance.from_dict(
        {"workspace": "s/r/w", "name": "ci1", "state": "Running", "tags": None, "last_operation": {}}
    )
    assert instance == ComputeInstance("s/r/w", "ci1", "Running")


def test_a_price_keeps_its_report_key_price_source():
    assert Price("STANDARD_DS3_V2", 0.2, "USD", "retail").to_dict() == {
        "vm_size": "STANDARD_DS3_V2",
        "hourly_price": 0.2,
        "currency": "USD",
        "price_source": "retail",
    }


def test_a_payload_missing_a_required_field_names_the_field_and_the_class():
    with pytest.raises(PayloadError, match=r"WorkspaceResult: field 'instances' is missing"):
        WorkspaceResult.from_dict({"workspace": "s/r/w"})


def test_a_ledger_round_trips_through_its_blob_with_one_item_per_line():
    item = LedgerItem("ci-1", "Running", "stop", "stop (Running)", "stop", notice={"sent_at": None})
    ledger = Ledger(
        "run",
        "shutdown",
        "s/r/w",
        "2026-11-30T22:00:00+00:00",
        items=(item, LedgerItem("ci-2", "Stopped", "already_stopped", "x")),
    )
    text = ledger.to_json()
    assert text.count(b"\n") == 4 and json.loads(text)["items"][0]["name"] == "ci-1"
    assert Ledger.from_json(text) == ledger
