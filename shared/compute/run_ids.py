"""Instance ids of a compute run's child orchestrations and names of its working blobs, derived from the run id
and the workspace, so that any part of the app can address them (the heads-up link raises its event on the
workspace's orchestration without asking the run for it)."""

from __future__ import annotations

import hashlib


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:length]


def workspace_key_hash(workspace: str) -> str:
    """12 hex digits naming a workspace (`sub/rg/name`, case-insensitive) in ids and blob names."""
    return _digest(workspace, 12)


def subscription_key_hash(subscription: str) -> str:
    """8 hex digits naming a subscription id in instance ids."""
    return _digest(subscription, 8)


def workspace_instance_id(run_id: str, workspace: str) -> str:
    """The orchestration that runs `workspace`'s part of run `run_id`."""
    return f"{run_id}:ws:{workspace_key_hash(workspace)}"


def subscription_instance_id(run_id: str, subscription: str, phase: str) -> str:
    """The orchestration of one phase (`plan` or `run`) of run `run_id` in one subscription."""
    return f"{run_id}:{phase}:{subscription_key_hash(subscription)}"


def subscription_of(workspace: str) -> str:
    """The subscription id of a workspace key `sub/rg/name`, lower-cased (ARM ids are case-insensitive)."""
    return workspace.strip().strip("/").split("/", 1)[0].lower()


# Working blobs of a run, in the reports container; deleted once the run's report is assembled.
def run_blob_prefix(run_id: str) -> str:
    return f"runs/{run_id}/"


def ledger_blob(run_id: str, workspace: str) -> str:
    """The ledger of `workspace` in run `run_id`: what the plan decided per instance and how far each got."""
    return f"{run_blob_prefix(run_id)}{workspace_key_hash(workspace)}.ledger.json"


def part_blob(run_id: str, workspace: str) -> str:
    """`workspace`'s entries of the run's report, written by its finish and streamed into the report."""
    return f"{run_blob_prefix(run_id)}{workspace_key_hash(workspace)}.part.json"
