"""Delivering one owner's heads-up to one channel, retried with backoff, reported, never raised.

A channel that fails or throttles (429, 5xx, no answer) is retried a few times with exponential backoff, honouring
Retry-After up to a cap; then the failure is a value (Delivery.error) for the report. Nothing here waits for or
blocks a stop: the run's stops are due at their own times whatever a channel does. Errors never carry the URL or the
addresses (webhook URLs are credentials): only the channel's name, the HTTP status or the kind of failure.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.compute.channels import Channel, is_email
from shared.compute.notice_messages import OwnerMessage, email_message, slack_body, teams_body, webhook_body

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_SECONDS = 1.0  # 1, 2, 4 s between attempts
MAX_WAIT_SECONDS = 30.0  # a Retry-After beyond this is cut to it
TIMEOUT_SECONDS = 10.0
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
BREAK_AFTER = 3  # messages in a row a channel failed (each after its retries) before the rest go unsent
# A fixed namespace: the same (run, channel, owner) gives the same ACS Operation-Id, so a repeated send is one mail.
_OPERATIONS = uuid.UUID("4f6f2b8e-6a49-4c8e-9f5c-2a3c0e1d7b55")

BODIES: dict[str, Callable[[OwnerMessage], dict[str, Any]]] = {
    "webhook": webhook_body,
    "teams": teams_body,
    "slack": slack_body,
}


@dataclass(frozen=True)
class Delivery:
    """What became of one message on one channel."""

    channel: str
    ok: bool
    attempts: int
    error: str | None = None


def _wait(attempt: int, retry_after: str | None, backoff: float) -> float:
    wait = float(backoff * 2 ** (attempt - 1))
    if retry_after:
        try:
            wait = max(wait, float(retry_after))
        except ValueError:
            pass  # an HTTP date: keep the backoff
    return min(wait, MAX_WAIT_SECONDS)


def post_json(
    channel: Channel, body: Mapping[str, Any], *, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS
) -> Delivery:
    """POST `body` to the channel's webhook; 2xx is delivered."""
    import requests

    problem = "not sent"
    for attempt in range(1, attempts + 1):
        retry_after: str | None = None
        try:
            with _untraced():
                response = requests.post(channel.url, json=body, timeout=TIMEOUT_SECONDS)
        except requests.Timeout:
            problem = f"no answer within {TIMEOUT_SECONDS:g} s"
        except requests.RequestException as err:
            problem = f"could not connect ({type(err).__name__})"
        else:
            if 200 <= response.status_code < 300:
                return Delivery(channel.name, True, attempt)
            problem = f"HTTP {response.status_code}"
            if response.status_code not in RETRYABLE:
                return Delivery(channel.name, False, attempt, f"channel {channel.name} refused the message: {problem}")
            retry_after = response.headers.get("Retry-After")
        if attempt < attempts:
            wait = _wait(attempt, retry_after, backoff)
            log.warning(
                "channel %s: %s; retrying in %.1f s (attempt %d of %d)",
                channel.name,
                problem,
                wait,
                attempt + 1,
                attempts,
            )
            time.sleep(wait)
    return Delivery(
        channel.name, False, attempts, f"channel {channel.name} failed after {attempts} attempts: {problem}"
    )


@contextmanager
def _untraced() -> Iterator[None]:
    """No HTTP client span for this request: OpenTelemetry's requests/urllib3 instrumentations (on in Azure through
    azure-monitor-opentelemetry) would record the full URL, and a webhook URL is the credential."""
    try:
        from opentelemetry.instrumentation.utils import suppress_http_instrumentation
    except ImportError:  # no OpenTelemetry instrumentation installed: nothing records the URL
        yield
        return
    with suppress_http_instrumentation():
        yield


def email_recipients(channel: Channel, message: OwnerMessage) -> tuple[str, ...]:
    """The owner when the owner is an email address, else the channel's default audience (`to`)."""
    return (message.owner,) if message.owner and is_email(message.owner) else channel.to


def send_email(
    channel: Channel,
    message: OwnerMessage,
    operation: str,
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
) -> Delivery:
    """ACS Email through the real SDK with the app's managed identity; accepted (202) is delivered. The SDK's own
    retry policy handles 429/5xx (backoff `backoff`), and the Operation-Id makes a repeated send one mail."""
    from azure.core.exceptions import AzureError, HttpResponseError

    body = email_message(message, channel.sender, email_recipients(channel, message))
    try:
        client = _email_client(channel.endpoint, attempts, backoff)
        # polling=False: the 202 is the answer we need; a poller would keep a thread reading the operation's status.
        client.begin_send(body, operation_id=str(uuid.uuid5(_OPERATIONS, operation)), polling=False)
    except HttpResponseError as err:
        status = err.status_code or "no status"
        code = getattr(getattr(err, "error", None), "code", None) or err.reason or ""
        return Delivery(channel.name, False, attempts, f"channel {channel.name} refused the mail: HTTP {status} {code}")
    except AzureError as err:
        return Delivery(channel.name, False, attempts, f"channel {channel.name} failed: {type(err).__name__}")
    return Delivery(channel.name, True, 1)


_clients: dict[tuple[str, int, float], Any] = {}


def _email_client(endpoint: str, attempts: int, backoff: float) -> Any:
    key = (endpoint, attempts, backoff)
    if key not in _clients:
        from azure.communication.email import EmailClient
        from azure.identity import DefaultAzureCredential

        _clients[key] = EmailClient(
            endpoint,
            DefaultAzureCredential(),
            retry_total=attempts - 1,
            retry_backoff_factor=backoff,
            retry_backoff_max=MAX_WAIT_SECONDS,
            connection_timeout=TIMEOUT_SECONDS,
            read_timeout=TIMEOUT_SECONDS,
        )
    return _clients[key]


def deliver(
    channel: Channel,
    message: OwnerMessage,
    operation: str,
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
) -> Delivery:
    """Send `message` on `channel`; `operation` names this (run, channel, owner) for idempotent email."""
    if channel.kind == "email":
        return send_email(channel, message, operation, attempts=attempts, backoff=backoff)
    return post_json(channel, BODIES[channel.kind](message), attempts=attempts, backoff=backoff)


class _Breaker:
    """Per channel: after BREAK_AFTER messages in a row failed (each retried already), the run's other messages to
    that channel fail at once, so a dead channel costs a run seconds, not (messages x retries x timeout)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failed: dict[str, int] = {}

    def open_for(self, channel: str) -> bool:
        with self.lock:
            return self.failed.get(channel, 0) >= BREAK_AFTER

    def record(self, delivery: Delivery) -> None:
        with self.lock:
            self.failed[delivery.channel] = 0 if delivery.ok else self.failed.get(delivery.channel, 0) + 1


def deliver_all(
    jobs: Sequence[tuple[Channel, OwnerMessage, str]], *, workers: int = 8, **options: Any
) -> list[Delivery]:
    """Every (channel, message, operation) at once on a few threads (each mostly waits on the network), in order."""
    from concurrent.futures import ThreadPoolExecutor

    if not jobs:
        return []
    breaker = _Breaker()

    def one(job: tuple[Channel, OwnerMessage, str]) -> Delivery:
        channel = job[0]
        if breaker.open_for(channel.name):
            return Delivery(
                channel.name, False, 0, f"channel {channel.name}: not sent, {BREAK_AFTER} messages in a row failed"
            )
        delivery = deliver(*job, **options)
        breaker.record(delivery)
        return delivery

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(one, jobs))
