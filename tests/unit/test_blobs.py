"""Blob helpers against Azurite: staged blocks, atomic commits, conditional reads, idempotent deletes."""

from __future__ import annotations

import base64
import uuid

import pytest

from devhost.azurite import Azurite
from shared import blobs
from shared.errors import BlocksLostError, NotFoundError, OutputChangedError, SourceChangedError, StorageError


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
    new_etag = blobs.blob_info(container, "in.csv", env).etag.strip('"')
    with pytest.raises(SourceChangedError, match=f"{container}/in.csv was replaced by eTag {new_etag} while"):
        blobs.read_range(container, "in.csv", 4, 8, etag=etag, env=env)
    blobs.delete_blob(container, "in.csv", env)
    with pytest.raises(SourceChangedError, match=f"{container}/in.csv was deleted while it was being scored"):
        blobs.read_range(container, "in.csv", 4, 8, etag=etag, env=env)


def test_missing_blob_and_repeated_delete(env: dict[str, str], container: str) -> None:
    with pytest.raises(NotFoundError, match=f"{container}/nope.csv"):
        blobs.blob_info(container, "nope.csv", env)
    blobs.upload(container, "x.csv", b"x", env=env)
    assert blobs.delete_blob(container, "x.csv", env) is True
    assert blobs.delete_blob(container, "x.csv", env) is False


def test_a_commit_that_discards_another_writers_blocks_is_caught(env: dict[str, str], container: str) -> None:
    # Two writers stage blocks of one blob; the first commit discards the second's staged blocks (as Azure does).
    first, second = blobs.block_id(0, "aaaaaaaaaaaaaaaa"), blobs.block_id(0, "bbbbbbbbbbbbbbbb")
    blobs.stage_block(container, "out.csv", first, b"first;", env)
    blobs.stage_block(container, "out.csv", second, b"second;", env)
    assert blobs.uncommitted_blocks(container, "out.csv", env) == {first, second}
    etag = blobs.commit_blocks(container, "out.csv", [first], if_missing=True, env=env)
    assert blobs.uncommitted_blocks(container, "out.csv", env) == set()
    with pytest.raises(OutputChangedError, match=f"{container}/out.csv was committed by another run"):
        blobs.commit_blocks(container, "out.csv", [second], if_missing=True, env=env)
    with pytest.raises(BlocksLostError, match="discarded by another run's commit") as lost:
        blobs.commit_blocks(container, "out.csv", [second], if_match=etag, env=env)
    assert "<?xml" not in str(lost.value) and "RequestId" not in str(lost.value)
    with pytest.raises(OutputChangedError):
        blobs.commit_blocks(container, "out.csv", [first], if_match='"0x1"', env=env)


def test_storage_errors_name_the_blob_and_code_without_the_service_body(env: dict[str, str]) -> None:
    with pytest.raises(StorageError) as refused:
        blobs.stage_block("no-such-container-x", "a.csv", blobs.block_id(0), b"x", env)
    message = str(refused.value)
    assert message.startswith("blob storage could not stage a block of no-such-container-x/a.csv: ContainerNotFound")
    assert "<?xml" not in message and "RequestId" not in message
