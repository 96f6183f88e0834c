"""Event Grid webhook semantics: parsing a delivery (Event Grid or CloudEvents schema) and the validation handshake.

The header decides, as in the Event Grid extension's `HttpRequestProcessor` (Microsoft.Azure.WebJobs.Extensions.
EventGrid 3.x): `aeg-event-type` compared without case; `SubscriptionValidation` answers the `validationCode` of the
first event's `data` (a CloudEvents validation sends one object whose `data` may be JSON text); `Notification`
invokes the function per event of an array (a single object is a delivery of one); `Unsubscribe` is acknowledged
(202); anything else, no header included, is 400 (Event Grid sends the header with CloudEvents too). devhost is
stricter than the extension where it would answer a handshake Event Grid never sends or fail mid-delivery: see
devhost/DURABLE.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devhost import jsonbody

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
EVENTGRID_REQUIRED = ("id", "eventType", "subject", "eventTime", "data", "dataVersion")
CLOUDEVENT_REQUIRED = ("id", "source", "type", "specversion")
MAX_EVENTS_PER_DELIVERY = 5000
_FRACTION = re.compile(r"^(.*\.\d{6})\d+(.*)$")
# The origins the extension echoes in `WebHook-Allowed-Origin` (HttpRequestProcessor.GetAllowedOriginResponseHeader);
# any other origin, or none, is answered with the public cloud's.
EVENT_GRID_ORIGINS = (
    "eventgrid.azure.net",
    "eventgrid.azure.us",
    "eventgrid.azure.eaglex.ic.gov",
    "eventgrid.azure.microsoft.scloud",
    "eventgrid.azure.cn",
)


class DeliveryError(ValueError):
    """A delivery is malformed; the message names what is wrong (answered with 400)."""


@dataclass(frozen=True)
class Delivery:
    kind: str  # "validation", "notification" or "unsubscribe"
    events: tuple[dict[str, Any], ...]
    validation_code: str | None = None


def allowed_origin(request_origin: str | None) -> str:
    """`WebHook-Allowed-Origin` for the CloudEvents OPTIONS handshake: Event Grid's own origins only."""
    origin = (request_origin or "").strip()
    return origin if origin in EVENT_GRID_ORIGINS else EVENT_GRID_ORIGINS[0]


def parse_delivery(body: bytes, event_type_header: str | None) -> Delivery:
    """A POST to the webhook, checked whole: every event a function invocation would trip over is refused here."""
    header = (event_type_header or "").strip()
    kind = header.lower()
    if kind == "unsubscribe":
        return Delivery("unsubscribe", ())
    if kind not in {"notification", "subscriptionvalidation"}:
        shown = f"is {header!r}" if event_type_header is not None else "is missing"
        raise DeliveryError(
            f"header aeg-event-type {shown}; expected Notification, SubscriptionValidation or Unsubscribe "
            "(Event Grid sends it with every delivery, CloudEvents included)"
        )
    payload = _load(body)
    if kind == "subscriptionvalidation":
        return _validation(payload)
    if isinstance(payload, dict):
        payload = [payload]  # a single event (CloudEvents binary/structured mode): a delivery of one
    if not isinstance(payload, list) or not payload:
        raise DeliveryError("body must be a non-empty JSON array of events (or one event object)")
    if len(payload) > MAX_EVENTS_PER_DELIVERY:
        raise DeliveryError(f"a delivery holds at most {MAX_EVENTS_PER_DELIVERY} events, got {len(payload)}")
    for position, event in enumerate(payload):
        _check_event(position, event)
    if any(_event_type(e) == VALIDATION_EVENT for e in payload):
        raise DeliveryError(f"{VALIDATION_EVENT} must come with header aeg-event-type: SubscriptionValidation")
    return Delivery("notification", tuple(payload))


def _load(body: bytes) -> Any:
    try:
        return jsonbody.loads(body, root="events")
    except jsonbody.JsonNumberError as err:
        # A single event object is delivery item 0, like an array of one.
        message = str(err) if err.field.startswith("events[") else "events[0]" + str(err).removeprefix("events")
        raise DeliveryError(message) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DeliveryError(f"body is not JSON: {err}") from None
    except RecursionError:
        raise DeliveryError("body is nested too deeply to be an Event Grid delivery") from None


def _event_type(event: Any) -> Any:
    return event.get("eventType", event.get("type")) if isinstance(event, dict) else None


def _validation(payload: Any) -> Delivery:
    """The handshake: the extension reads only the first event's `data.validationCode` (a CloudEvents validation
    is one object whose `data` may be JSON text); devhost also refuses several events or another event type."""
    expected = f"a SubscriptionValidation delivery must hold one {VALIDATION_EVENT} event with data.validationCode"
    events = payload if isinstance(payload, list) else [payload]
    if len(events) != 1 or not isinstance(events[0], dict):
        raise DeliveryError(expected)
    event = events[0]
    event_type = _event_type(event)
    if event_type is not None and event_type != VALIDATION_EVENT:
        raise DeliveryError(f"{expected}, got event type {json.dumps(event_type)[:80]}")
    data = event.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    code = data.get("validationCode") if isinstance(data, dict) else None
    if not isinstance(code, str) or not code:
        raise DeliveryError(expected)
    return Delivery("validation", (event,), code)


def _check_event(position: int, event: Any) -> None:
    """Everything a function invocation would trip over, checked before any event of the delivery starts."""
    where = f"events[{position}]"
    if not isinstance(event, dict):
        raise DeliveryError(f"{where} is not a JSON object")
    cloud = "specversion" in event
    required = CLOUDEVENT_REQUIRED if cloud else EVENTGRID_REQUIRED
    missing = [name for name in required if name not in event]
    if missing:
        schema = "CloudEvents 1.0" if cloud else "Event Grid"
        raise DeliveryError(f"{where} lacks {', '.join(missing)} required by the {schema} schema")
    for name in ("id", "eventType", "subject", "type", "source", "dataVersion", "specversion"):
        if name in event and event[name] is not None and not isinstance(event[name], str):
            raise DeliveryError(f"{where}.{name}: expected a string, got {json.dumps(event[name])[:80]}")
    time_field = "time" if cloud else "eventTime"
    if time_field in event or not cloud:  # optional in CloudEvents, required in the Event Grid schema
        _check_time(f"{where}.{time_field}", event.get(time_field))


def _check_time(where: str, value: Any) -> None:
    shown = repr(value) if isinstance(value, str) else json.dumps(value)
    if not isinstance(value, str) or not _is_iso_datetime(value):
        raise DeliveryError(f"{where}: expected an ISO 8601 date-time, got {shown[:80]}")


def _is_iso_datetime(text: str) -> bool:
    # Event Grid sends 7 fractional digits (.NET ticks); Python reads at most 6.
    match = _FRACTION.match(text)
    if match:
        text = match.group(1) + match.group(2)
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in text or " " in text  # a date alone is not an event time
