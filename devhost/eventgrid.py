"""Event Grid webhook semantics: parsing a delivery (Event Grid or CloudEvents schema) and the validation handshake."""

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


class DeliveryError(ValueError):
    """A delivery is malformed; the message names what is wrong (answered with 400)."""


@dataclass(frozen=True)
class Delivery:
    kind: str  # "validation" or "notification"
    events: tuple[dict[str, Any], ...]
    validation_code: str | None = None


def parse_delivery(body: bytes, event_type_header: str | None, content_type: str | None) -> Delivery:
    header = (event_type_header or "").strip()
    is_cloudevents = "cloudevents" in (content_type or "").lower()
    # The header decides first, as in the Functions host's Event Grid extension (HttpRequestProcessor).
    if header not in {"Notification", "SubscriptionValidation"} and (header or not is_cloudevents):
        raise DeliveryError(f"header aeg-event-type is {header!r}; expected 'Notification' or 'SubscriptionValidation'")
    try:
        payload = jsonbody.loads(body, root="events")
    except jsonbody.JsonNumberError as err:
        # A single CloudEvent is delivery item 0, like an array of one.
        message = str(err) if err.field.startswith("events[") else "events[0]" + str(err).removeprefix("events")
        raise DeliveryError(message) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DeliveryError(f"body is not JSON: {err}") from None
    except RecursionError:
        raise DeliveryError("body is nested too deeply to be an Event Grid delivery") from None
    if isinstance(payload, dict):
        if not (is_cloudevents or "specversion" in payload):
            raise DeliveryError("body must be a JSON array of events (a single object only for CloudEvents)")
        payload = [payload]
    if not isinstance(payload, list) or not payload:
        raise DeliveryError("body must be a non-empty JSON array of events")
    if len(payload) > MAX_EVENTS_PER_DELIVERY:
        raise DeliveryError(f"a delivery holds at most {MAX_EVENTS_PER_DELIVERY} events, got {len(payload)}")
    for position, event in enumerate(payload):
        _check_event(position, event)

    if header == "SubscriptionValidation":
        event = payload[0]
        code = event.get("data", {}).get("validationCode") if isinstance(event.get("data"), dict) else None
        if len(payload) != 1 or event.get("eventType") != VALIDATION_EVENT or not isinstance(code, str) or not code:
            raise DeliveryError(
                f"a SubscriptionValidation delivery must hold one {VALIDATION_EVENT} event with data.validationCode"
            )
        return Delivery("validation", tuple(payload), code)
    if any(e.get("eventType") == VALIDATION_EVENT for e in payload):
        raise DeliveryError(f"{VALIDATION_EVENT} must come with header aeg-event-type: SubscriptionValidation")
    return Delivery("notification", tuple(payload))


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
