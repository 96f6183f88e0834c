"""Session-wide fixtures shared by the test tiers: one Azurite blob service for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.azurite import Azurite

pytest_plugins = ["tests.reliability"]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite on a free loopback port; tests make their own uniquely named containers."""
    service = Azurite(tmp_path_factory.mktemp("azurite"), port=0).start()
    try:
        yield service
    finally:
        service.stop()
