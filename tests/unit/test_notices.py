"""Sending the heads-up: real HTTP to a loopback sink, the real ACS Email SDK to the ACS stand-in (managed identity
from the identity stand-in), notice records in Azurite. Failing channels are retried, reported, and block nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from devhost.azurite import Azurite
from devhost.standins.identity import IdentityStandin
from devhost.standins.notify import NotifySink
from devhost.standins.tls import make_local_tls
from shared.compute import channel_send, links, notices
from shared.compute import postponements as pp
from shared.compute.notices import PlannedStop
from shared.compute.run_ids import workspace_key_hash
from tests.helpers.standins import use_identity_standin

KEY = "a-test-signing-key-" + "y" * 20
WS1 = "sub-1/rg-ml/ws-research"
WS2 = "sub-1/rg-ml/ws-prod"
NOW = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
STOP = NOW + timedelta(minutes=30)
FAST = {"backoff": 0.05}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def identity() -> Iterator[IdentityStandin]:
    with IdentityStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def hooks() -> Iterator[NotifySink]:
    with NotifySink() as sink:  # plain http on loopback: what a webhook channel may point at locally
        yield sink


@pytest.fixture(scope="module")
def acs(tls: Any, identity: IdentityStandin) -> Iterator[NotifySink]:
    with NotifySink(tls, token_validator=identity.is_valid) as sink:
        yield sink


@pytest.fixture
def env(azurite: Azurite, hooks: NotifySink, acs: NotifySink, identity, tls, monkeypatch) -> dict[str, str]:
    hooks.clear()
    acs.clear()
    use_identity_standin(monkeypatch, identity, tls)
    channels = [
        {"name": "ops", "kind": "webhook", "url": f"{hooks.url}/ops"},
        {"name": "team-chat", "kind": "teams", "url": f"{hooks.url}/teams"},
        {"name": "slack-prod", "kind": "slack", "url": f"{hooks.url}/slack", "instances": ["ws-prod/*"]},
        {
            "name": "mail",
            "kind": "email",
            "to": ["ml-team@contoso.com"],
            "endpoint": acs.url,
            "sender": "DoNotReply@contoso.com",
        },
    ]
    return {
        "DATA_STORAGE": azurite.connection_string,
        "REPORTS_CONTAINER": f"r{uuid.uuid4().hex[:12]}",
        "NOTICE_SIGNING_KEY": KEY,
        "NOTICE_LINK_BASE_URL": "https://ops.contoso.com",
        "NOTIFY_CHANNELS": json.dumps(channels),
        "OWNER_TAG": "owner",
    }


def _stops() -> list[PlannedStop]:
    iso = pp.iso_time(STOP) or ""
    alice = {"owner": "alice@contoso.com"}
    return [
        PlannedStop(WS1, "ci-alice", iso, "stop (Running, opt-out mode)", alice),
        PlannedStop(WS2, "ci-alice-prod", iso, "stop (Running, opt-out mode)", {"Owner": "alice@contoso.com"}),
        PlannedStop(WS1, "ci-carol", iso, "stop", {}, {"user_name": "Carol Weiss", "user_id": "x"}),
        PlannedStop(WS1, "ci-nobody", iso, "stop", {}),
    ]


def test_one_message_per_owner_per_channel_with_one_link_per_instance(env, hooks, acs) -> None:
    summary = notices.send_notices("run-1", _stops(), NOW, env, **FAST)
    assert (summary.owners, summary.instances, summary.messages_failed) == (3, 4, 0)
    ops = hooks.received("webhook")
    assert len(ops) == 3  # alice (both workspaces in one message), Carol, nobody
    by_owner = {m.body["notices"][0]["owner"]: m.body["notices"] for m in ops}
    assert [n["instance"] for n in by_owner["alice@contoso.com"]] == ["ci-alice-prod", "ci-alice"]
    assert by_owner["Carol Weiss"][0]["instance"] == "ci-carol"  # the creator, from ARM's createdBy
    assert by_owner[None][0]["instance"] == "ci-nobody"
    # Each link is a signed token for exactly its instance, on the configured base.
    for n in (n for notices_ in by_owner.values() for n in notices_):
        url = n["links"]["review"]
        assert url.startswith("https://ops.contoso.com/api/notices/v1.")
        claims = links.verify(urlsplit(url).path.rsplit("/", 1)[1], KEY.encode(), NOW)
        assert (claims.run_id, claims.instance) == ("run-1", n["instance"])
        assert claims.workspace_hash == workspace_key_hash(n["workspace"])
    assert len(hooks.received("teams")) == 3
    slack = hooks.received("slack")  # only ws-prod/* instances: alice's prod instance alone
    assert (
        len(slack) == 1
        and "ci-alice-prod" in json.dumps(slack[0].body)
        and "ci-alice\\n" not in json.dumps([m.body for m in slack])
    )
    mails = acs.received("email")
    to = sorted(tuple(r["address"] for r in m.body["recipients"]["to"]) for m in mails)
    assert to == [("alice@contoso.com",), ("ml-team@contoso.com",), ("ml-team@contoso.com",)]


def test_the_records_say_what_was_sent_before_and_after(env, hooks) -> None:
    notices.send_notices("run-2", _stops(), NOW, env, **FAST)
    record, _ = pp.read_record("run-2", workspace_key_hash(WS1), env) or (None, None)
    assert record is not None
    alice = record.instances["ci-alice"]
    assert alice.owner == "alice@contoso.com" and alice.stop_at == "2026-11-30T22:00:00Z"
    assert alice.channels == ("mail", "ops", "team-chat") and alice.sent_at == "2026-11-30T21:30:00Z"
    prod = pp.read_record("run-2", workspace_key_hash(WS2), env)
    assert prod is not None and prod[0].instances["ci-alice-prod"].channels == (
        "mail",
        "ops",
        "slack-prod",
        "team-chat",
    )


def test_a_repeated_send_announces_nothing_twice(env, hooks, acs) -> None:
    notices.send_notices("run-3", _stops(), NOW, env, **FAST)
    first = (len(hooks.received()), len(acs.received()))
    again = notices.send_notices("run-3", _stops(), NOW + timedelta(seconds=30), env, **FAST)
    assert (len(hooks.received()), len(acs.received())) == first
    assert again.messages_sent == 0 and again.skipped_already_sent == 3 * 3 + 1


def test_throttled_and_failing_channels_are_retried_then_reported(env, hooks) -> None:
    hooks.fail(r"^/teams$", 429, count=2, retry_after="0")
    hooks.fail(r"^/ops$", 503, count=99)
    started = time.monotonic()
    summary = notices.send_notices("run-4", _stops(), NOW, env, attempts=3, backoff=0.05)
    assert time.monotonic() - started < 5
    assert len(hooks.received("teams")) == 3  # after the 429s
    failed = {(f["channel"], f["owner"]) for f in summary.failures}
    assert failed == {("ops", "alice@contoso.com"), ("ops", "Carol Weiss"), ("ops", None)}
    assert all("failed after 3 attempts: HTTP 503" in f["error"] for f in summary.failures)
    assert sum(1 for m, p, s in hooks.requests if p == "/ops") == 9  # 3 owners x 3 attempts
    record = pp.read_record("run-4", workspace_key_hash(WS1), env)
    assert record is not None
    alice = record[0].instances["ci-alice"]
    assert "ops" not in alice.channels and "team-chat" in alice.channels and "HTTP 503" in (alice.error or "")
    assert hooks.url not in json.dumps(summary.to_dict())  # the report never shows a webhook URL
    # A later call delivers what failed, and only that.
    hooks.clear()
    retry = notices.send_notices("run-4", _stops(), NOW, env, **FAST)
    assert retry.messages_sent == 3 and {m.path for m in hooks.received()} == {"/ops"}


def test_a_refusing_channel_is_not_retried(env, hooks) -> None:
    hooks.fail(r"^/slack$", 400, count=99)
    summary = notices.send_notices("run-5", _stops(), NOW, env, **FAST)
    (failure,) = summary.failures
    assert failure["channel"] == "slack-prod" and "refused the message: HTTP 400" in failure["error"]
    assert sum(1 for _, p, _ in hooks.requests if p == "/slack") == 1


def test_a_channel_that_does_not_answer_times_out(env, hooks, monkeypatch) -> None:
    monkeypatch.setattr(channel_send, "TIMEOUT_SECONDS", 0.3)
    hooks.fail(r"^/ops$", 0, count=2, delay_seconds=1.0)  # answers late twice, then normally
    summary = notices.send_notices("run-6", _stops()[:1], NOW, env, attempts=3, backoff=0.05)
    assert summary.messages_failed == 0
    deadline = time.monotonic() + 5  # the two late answers are still being written by the sink: let them end
    while sum(1 for _, p, _ in hooks.requests if p == "/ops") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The sink got all three posts (it does not know the client gave up on two): an at-least-once channel.
    assert len(hooks.received("webhook")) == 3


def test_email_needs_the_identity_and_a_valid_message(env, acs) -> None:
    """The ACS stand-in checks the real SDK's request: bearer token, api-version, EmailMessage fields."""
    notices.send_notices("run-7", _stops()[:1], NOW, env, **FAST)
    (mail,) = acs.received("email")
    assert mail.body["senderAddress"] == "DoNotReply@contoso.com"
    assert mail.body["content"]["subject"].startswith("Heads-up: 1 compute instance will be stopped")
    assert uuid.UUID(mail.headers["operation-id"])  # idempotent: the same run, channel and owner give the same id
    assert any(p == "/emails:send" and s == 202 for _, p, s in acs.requests)


def test_without_channels_or_in_a_dry_run_nothing_waits_and_nothing_is_sent(env, hooks) -> None:
    assert notices.notice_plan(30, dry_run=False, env=env).minutes == 30
    assert notices.notice_plan(30, dry_run=True, env=env).minutes == 0
    assert notices.notice_plan(0, dry_run=False, env=env).minutes == 0
    none = {**env, "NOTIFY_CHANNELS": ""}
    assert notices.notice_plan(30, dry_run=False, env=none).minutes == 0
    assert notices.send_notices("run-8", _stops(), NOW, none).messages_sent == 0 and not hooks.received()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"NOTIFY_CHANNELS": '[{"name": "x", "kind": "pager"}]'}, "NOTIFY_CHANNELS[0].kind is 'pager'"),
        ({"NOTICE_SIGNING_KEY": "short"}, "NOTICE_SIGNING_KEY (value not shown) is too short"),
        ({"NOTICE_LINK_BASE_URL": ""}, "NOTICE_LINK_BASE_URL is required where WEBSITE_HOSTNAME is not set"),
    ],
)
def test_bad_settings_mean_no_heads_up_and_no_wait_and_are_named(env, hooks, change, said) -> None:
    bad = {**env, **change}
    plan = notices.notice_plan(30, dry_run=False, env=bad)
    assert plan.minutes == 0 and plan.error is not None and said in plan.error
    summary = notices.send_notices("run-9", _stops(), NOW, bad)
    assert summary.error is not None and said in summary.error and not hooks.received()


def test_owner_of() -> None:
    assert notices.owner_of({"OWNER": " bob "}, {"user_name": "Carol"}, "owner") == "bob"
    assert notices.owner_of({"owner": ""}, {"user_name": "Carol"}, "owner") == "Carol"
    assert notices.owner_of({}, None, "owner") is None


def test_no_trace_records_a_webhook_url(env, hooks) -> None:
    """In Azure, azure-monitor-opentelemetry instruments requests and urllib3: their spans would carry the URL."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentors = (RequestsInstrumentor(), URLLib3Instrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        import requests

        requests.get(f"{hooks.url}/probe", timeout=5)  # the instrumentation is on: this one is recorded
        probe = len(exporter.get_finished_spans())
        notices.send_notices("run-10", _stops()[:1], NOW, env, **FAST)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    assert probe >= 1 and len(hooks.received("webhook")) == 1
    spans = exporter.get_finished_spans()[probe:]
    assert not any(hooks.url in json.dumps(dict(s.attributes or {})) for s in spans)
