"""Turning BlobCreated events and HTTP bodies into scoring requests: what is scored, what is ignored, and why."""

from __future__ import annotations

import pytest

from shared.errors import InputError
from shared.scoring.events import (
    account_of,
    control_character_reason,
    ignore_reason,
    parse_blob_created,
    scoring_instance_id,
)

SUBJECT = "/blobServices/default/containers/incoming/blobs/"


def event(name: str, *, api: str = "PutBlob", container: str = "incoming") -> dict[str, object]:
    return {
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "data": {
            "url": f"https://acct.blob.core.windows.net/{container}/{name}",
            "eTag": "0x8D1",
            "api": api,
            "contentLength": 10,
        },
    }


def reason(name: str, **kwargs: str) -> str | None:
    e = event(name, **kwargs)
    blob = parse_blob_created("id-1", "Microsoft.Storage.BlobCreated", str(e["subject"]), e["data"])
    assert blob is not None
    return ignore_reason(blob, "incoming")


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        ("a.csv", {}, None),
        ("dir/My File.CSV", {}, None),
        ("données/été.csv", {}, None),
        ("notes.txt", {}, "does not end in .csv"),
        ("a.csv", {"container": "other"}, "not the input container"),
        ("a.csv", {"api": "CreateFile"}, "FlushWithClose"),
        ("a/../b.csv", {}, "'..' path segment"),
        ("../b.csv", {}, "'..' path segment"),
        ("a/./b.csv", {}, "'..' path segment"),
        ("x" * 1100 + ".csv", {}, "more than 1024"),
    ],
)
def test_which_blobs_are_scored(name: str, kwargs: dict[str, str], fragment: str | None) -> None:
    found = reason(name, **kwargs)
    if fragment is None:
        assert found is None
    else:
        assert found is not None and fragment in found


def test_other_event_types_are_not_blob_created() -> None:
    assert parse_blob_created("id", "Microsoft.Storage.BlobDeleted", SUBJECT + "a.csv", {}) is None


@pytest.mark.parametrize(
    ("subject", "data", "fragment"),
    [
        ("/containers/x", {"url": "u", "eTag": "e"}, "is not /blobServices"),
        (SUBJECT + "a.csv", ["not", "an", "object"], "data must be an object"),
        (SUBJECT + "a.csv", {"eTag": "e"}, "data.url and data.eTag"),
        (SUBJECT + "a.csv", {"url": "u", "eTag": "e", "contentLength": "ten"}, "contentLength"),
    ],
)
def test_malformed_blob_created_events_name_the_problem(subject: str, data: object, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        parse_blob_created("id", "Microsoft.Storage.BlobCreated", subject, data)


def test_instance_id_is_per_blob_version_and_url_safe() -> None:
    first = scoring_instance_id("acct", "incoming", "dir/a b.csv", "0x1")
    assert first == scoring_instance_id("acct", "incoming", "dir/a b.csv", '"0x1"')
    assert first != scoring_instance_id("acct", "incoming", "dir/a b.csv", "0x2")
    assert first != scoring_instance_id("other", "incoming", "dir/a b.csv", "0x1")
    assert first.startswith("score-") and first.replace("-", "").isalnum()


@pytest.mark.parametrize(
    ("url", "account"),
    [
        ("https://acct.blob.core.windows.net/incoming/a.csv", "acct"),
        ("http://127.0.0.1:10000/devstoreaccount1/incoming/a.csv", "devstoreaccount1"),
    ],
)
def test_account_of_blob_urls(url: str, account: str) -> None:
    assert account_of(url) == account


@pytest.mark.parametrize("name", ["cr\r\nlf.csv", "dir/line\nbreak.csv", "lone\rcr.csv", "tab\tin.csv"])
def test_a_blob_named_with_line_breaks_keeps_its_exact_name(name: str) -> None:
    """Issue 19: such an event was dropped as malformed (`.` matched no line break), so nothing said why the file
    was never scored; its run now starts and fails saying why (shared/scoring/chunk_scoring.plan_scoring)."""
    e = event(name)
    blob = parse_blob_created("id-1", "Microsoft.Storage.BlobCreated", str(e["subject"]), e["data"])
    assert blob is not None and blob.name == name and blob.container == "incoming"
    assert ignore_reason(blob, "incoming") is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("cr\r\nlf.csv", "U+000D (carriage return) at position 2"),
        ("dir/line\nbreak.csv", "U+000A (line feed) at position 8"),
        ("bell\x07.csv", "U+0007 at position 4"),
        ("c1\x85.csv", "U+0085 at position 2"),
    ],
)
def test_control_characters_in_a_blob_name_are_named_with_what_to_do(name: str, fragment: str) -> None:
    found = control_character_reason(name)
    assert found is not None and fragment in found
    assert repr(name) in found and "\n" not in found and "\r" not in found  # quoted: one line in any log
    assert "upload the file again under a name without them" in found


def test_ordinary_names_have_no_control_characters() -> None:
    assert control_character_reason("dir/My File (2).CSV") is None
    assert control_character_reason("données/été 日本.csv") is None
