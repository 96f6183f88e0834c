"""Which storage an event is about: only the configured account and the subject's container are scored; and
devhost's Event Grid webhook refuses a delivery whole, naming the event and field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devhost.eventgrid import DeliveryError, parse_delivery
from shared.errors import InputError
from shared.scoring.events import BlobCreated, foreign_reason, parse_blob_created, request_for

NAME = "in/put.csv"


def blob(url: str, container: str = "incoming") -> BlobCreated:
    parsed = parse_blob_created(
        "id-1",
        "Microsoft.Storage.BlobCreated",
        f"/blobServices/default/containers/{container}/blobs/{NAME}",
        {"url": url, "eTag": "0x8D1", "api": "PutBlob", "contentLength": 10},
    )
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.blob.core.windows.net/incoming/in/put.csv",
        "https://ACCT.dfs.core.windows.net/incoming/in/put.csv",  # ADLS Gen2 events name the dfs endpoint
        "http://127.0.0.1:10000/acct/incoming/in%2Fput.csv",
    ],
)
def test_events_of_the_configured_account_and_container_are_ours(url: str) -> None:
    assert foreign_reason(blob(url), "acct") is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://evil.blob.core.windows.net/incoming/in/put.csv", "storage account 'evil', not the configured"),
        ("http://127.0.0.1:10000/other/incoming/in/put.csv", "storage account 'other'"),
        ("https://acct.blob.core.windows.net/uploads/in/put.csv", "container 'uploads' but the subject"),
    ],
)
def test_events_naming_another_account_or_container_are_not_ours(url: str, fragment: str) -> None:
    reason = foreign_reason(blob(url), "acct")
    assert reason is not None and fragment in reason


def test_the_request_carries_the_configured_account_not_the_events() -> None:
    request = request_for(blob("https://acct.blob.core.windows.net/incoming/in/put.csv"), "acct")
    assert request.account == "acct"


@pytest.mark.parametrize("length", [1e400, -1, "10", 10.5, True])
def test_content_length_must_be_a_non_negative_integer(length: Any) -> None:
    with pytest.raises(InputError, match=r"data\.contentLength"):
        parse_blob_created(
            "id-1",
            "Microsoft.Storage.BlobCreated",
            f"/blobServices/default/containers/incoming/blobs/{NAME}",
            {"url": "https://acct.blob.core.windows.net/incoming/x", "eTag": "0x1", "contentLength": length},
        )


def grid_event(**changes: Any) -> dict[str, Any]:
    return {
        "id": "e",
        "topic": "t",
        "subject": "s",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-26T10:00:00.1234567Z",
        "data": {},
        "dataVersion": "",
        **changes,
    }


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([grid_event(), grid_event(eventTime="x")], "events[1].eventTime: expected an ISO 8601 date-time, got 'x'"),
        ([grid_event(eventTime=None)], "events[0].eventTime: expected an ISO 8601 date-time, got null"),
        ([grid_event(subject=["s"])], 'events[0].subject: expected a string, got ["s"]'),
    ],
)
def test_a_delivery_is_refused_whole_naming_the_event_and_field(events: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        parse_delivery(json.dumps(events).encode(), "Notification")
    assert str(caught.value) == message


def test_a_single_cloud_event_names_its_numbers_as_event_0() -> None:
    body = b'{"id": "c", "source": "s", "type": "t", "specversion": "1.0", "data": {"n": NaN}}'
    with pytest.raises(DeliveryError, match=r"^events\[0\]\.data\.n: got NaN"):
        parse_delivery(body, "Notification")


def test_cloud_events_without_time_and_good_deliveries_pass() -> None:
    cloud = {"id": "c", "source": "s", "type": "t", "specversion": "1.0", "data": {"n": 12345678901234567890}}
    delivery = parse_delivery(json.dumps(cloud).encode(), "Notification")
    assert delivery.kind == "notification" and delivery.events[0]["data"]["n"] == 12345678901234567890
    assert len(parse_delivery(json.dumps([grid_event()] * 3).encode(), "Notification").events) == 3
