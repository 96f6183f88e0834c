"""devhost's blob relay when Azurite cannot list a container: said once, clearly, not in a debug line."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.relay import LIST_FAILURES_TO_WARN, BlobRelay, Subscription
from shared import blobs


def test_a_container_azurite_cannot_list_is_named_with_the_likely_cause(
    azurite: Azurite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: Azurite stores a blob named with U+0007 and then answers 500 to every listing of its container,
    so the relay delivered nothing from it, ever, and said so only at debug level."""
    env = {"DATA_STORAGE": azurite.connection_string}
    container = f"in{uuid.uuid4().hex[:12]}"
    blobs.ensure_container(container, env)
    blobs.upload(container, "good.csv", b"height\n170\n", env=env)
    blobs.upload(container, "bell\x07.csv", b"height\n170\n", env=env)
    delivered: list[str] = []

    def deliver(function: str, event: dict[str, Any]) -> list[str]:
        delivered.append(event["subject"])
        return []  # started nothing: its work has ended

    relay = BlobRelay(
        azurite.connection_string,
        [Subscription("on_blob_created", f"/blobServices/default/containers/{container}/")],
        tmp_path,
        deliver,
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="devhost.relay"):
        for _ in range(LIST_FAILURES_TO_WARN + 5):
            relay.poll_once()
    assert time.monotonic() - started < 15  # a failed pass is retried by the next, not by the SDK (82 s a pass)
    assert delivered == []  # Azurite's own limit: nothing in that container can be listed
    [warning] = [r.getMessage() for r in caplog.records if r.name == "devhost.relay"]
    assert f"listing container {container} failed {LIST_FAILURES_TO_WARN} times in a row" in warning
    assert "control character" in warning and "delete that blob" in warning
    blobs.delete_blob(container, "bell\x07.csv", env)
    relay.poll_once()
    assert delivered == [f"/blobServices/default/containers/{container}/blobs/good.csv"]
