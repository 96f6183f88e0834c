"""Blob helpers against Azurite: staged blocks, atomic commits, conditional reads, idempotent deletes."""

from __future__ import annotations

import base64
import uuid

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import NotFoundError, ScoringError


@pytest.fixture
def env(azurite: Azurite) -> dict[str, str]:
    return {"DATA_STORAGE": azurite.connection_string}


@pytest.fixture
def container(env: dict[str, str]) -> str:
    name = f"t{uuid.uuid4().hex[:20]}"
    blobs.ensure_container(name, env)
    return name


def test_block_ids_have_one_length_and_differ_per_chunk() -> None:
    ids = [blobs.block_id(i, "0123456789abcdef") for i in (0, 7, 999_999)]
    assert len({len(i) for i in ids}) == 1
    assert len(set(ids)) == 3
    assert base64.b64decode(ids[1]).decode() == "0123456789abcdef000007"


def test_ensure_container_twice_is_fine(env: dict[str, str], container: str) -> None:
    blobs.ensure_container(container, env)
    assert blobs.list_names(container, "", env) == []


def test_restaged_block_gives_one_copy_in_commit_order(env: dict[str, str], container: str) -> None:
    ids = [blobs.block_id(i, "k") for i in range(3)]
    for i in (2, 0, 1, 1):  # out of order, chunk 1 twice (an activity re-run)
        blobs.stage_block(container, "out.csv", ids[i], f"part{i};".encode(), env)
    etag = blobs.commit_blocks(container, "out.csv", ids, metadata={"rows": "3"}, env=env)
    info = blobs.blob_info(container, "out.csv", env)
    assert blobs.read_range(container, "out.csv", 0, info.size, env=env) == b"part0;part1;part2;"
    assert info.etag == etag and info.metadata == {"rows": "3"} and info.content_type == "text/csv"
    # committing the same list again (commit activity re-run) keeps the same content
    blobs.commit_blocks(container, "out.csv", ids, metadata={"rows": "3"}, env=env)
    assert blobs.read_range(container, "out.csv", 0, 18, env=env) == b"part0;part1;part2;"


def test_read_range_refuses_a_changed_blob(env: dict[str, str], container: str) -> None:
    blobs.upload(container, "in.csv", b"a,b\n1,2\n", env=env)
    etag = blobs.blob_info(container, "in.csv", env).etag
    assert blobs.read_range(container, "in.csv", 4, 8, etag=etag, env=env) == b"1,2\n"
    blobs.upload(container, "in.csv", b"a,b\n3,4\n", env=env)
    with pytest.raises(ScoringError, match="changed while it was being scored"):
        blobs.read_range(container, "in.csv", 4, 8, etag=etag, env=env)


def test_missing_blob_and_repeated_delete(env: dict[str, str], container: str) -> None:
    with pytest.raises(NotFoundError, match=f"{container}/nope.csv"):
        blobs.blob_info(container, "nope.csv", env)
    blobs.upload(container, "x.csv", b"x", env=env)
    assert blobs.delete_blob(container, "x.csv", env) is True
    assert blobs.delete_blob(container, "x.csv", env) is False
