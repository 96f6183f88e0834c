"""devhost's blob relay delivers each blob version at least once, and again after a restart while the work the event
started had not ended (devhost/relay.py), against a real Azurite; deliveries are recorded, not sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.relay import BlobRelay, Subscription


class Webhook:
    """Stands in for the host's webhook: records events, answers with the instances each started (or refuses)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.refuse = False
        self.running: set[str] = set()

    def deliver(self, function: str, event: dict[str, Any]) -> list[str] | None:
        if self.refuse:
            return None
        self.events.append(event)
        instance = f"run-{len(self.events)}"
        self.running.add(instance)
        return [instance]

    def ended(self, instances: Sequence[str]) -> bool:
        return not set(instances) & self.running


@pytest.fixture
def container(azurite: Azurite) -> Any:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        f"relay-{uuid.uuid4().hex[:10]}"
    )
    client.create_container()
    return client


def relay(azurite: Azurite, container: Any, state: Path, hook: Webhook) -> BlobRelay:
    subscription = Subscription("on_blob", f"/blobServices/default/containers/{container.container_name}/")
    return BlobRelay(azurite.connection_string, [subscription], state, hook.deliver, hook.ended, interval=0.01)


def test_an_event_is_kept_until_its_work_ends_and_not_delivered_twice(
    azurite: Azurite, container: Any, tmp_path: Path
) -> None:
    hook = Webhook()
    first = relay(azurite, container, tmp_path, hook)
    container.upload_blob("a.csv", b"1")
    assert first.poll_once() == 1
    assert first.poll_once() == 0  # delivered once, waiting for its work
    journal = json.loads((tmp_path / "relay-journal.json").read_text())["events"]
    assert [e["delivered"] for e in journal] == [True]
    hook.running.clear()  # the orchestration ended
    first.poll_once()
    assert json.loads((tmp_path / "relay-journal.json").read_text())["events"] == []
    second = relay(azurite, container, tmp_path, hook)
    assert second.poll_once() == 0 and len(hook.events) == 1


def test_after_a_restart_an_event_whose_work_had_not_ended_is_delivered_again_with_its_id(
    azurite: Azurite, container: Any, tmp_path: Path
) -> None:
    hook = Webhook()
    first = relay(azurite, container, tmp_path, hook)
    container.upload_blob("a.csv", b"1")
    first.poll_once()
    # devhost dies: the engine and the running instance with it.
    hook.running.clear()
    second = relay(azurite, container, tmp_path, hook)
    hook.running.add("still running in the old engine")  # irrelevant: the new run cannot know it
    assert second.poll_once() == 1
    assert [e["id"] for e in hook.events] == [hook.events[0]["id"]] * 2  # the same event, as Event Grid retries


def test_a_refused_delivery_is_retried_and_survives_a_restart(azurite: Azurite, container: Any, tmp_path: Path) -> None:
    hook = Webhook()
    hook.refuse = True
    first = relay(azurite, container, tmp_path, hook)
    container.upload_blob("a.csv", b"1")
    first.poll_once()
    assert hook.events == []
    hook.refuse = False
    second = relay(azurite, container, tmp_path, hook)
    assert second.poll_once() == 1 and len(hook.events) == 1


def test_an_older_version_ending_after_a_newer_one_does_not_bring_the_newer_back(
    azurite: Azurite, container: Any, tmp_path: Path
) -> None:
    hook = Webhook()
    watcher = relay(azurite, container, tmp_path, hook)
    container.upload_blob("a.csv", b"1")
    watcher.poll_once()  # version 1 delivered, its work runs (run-1)
    container.upload_blob("a.csv", b"2", overwrite=True)
    watcher.poll_once()  # version 2 delivered (run-2)
    hook.running.discard("run-2")
    watcher.poll_once()  # version 2 ends first
    hook.running.discard("run-1")
    watcher.poll_once()  # then version 1
    watcher.poll_once()
    assert [e["data"]["contentLength"] for e in hook.events] == [1, 1]  # each version once, none again
    etags = [e["data"]["eTag"] for e in hook.events]
    assert len(set(etags)) == 2
