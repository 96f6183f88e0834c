"""`make run`'s heads-up offline: with local.settings.sample.json as it is (its fleet on devhost's ARM stand-in, its
channels of every kind, DEVHOST_NOTIFY_SINK=on), a shutdown's heads-up reaches devhost's notification stand-in on
every channel (webhook, Teams and Slack through devhost's HTTPS proxy at *.devhost.invalid; email through the real ACS
SDK with the managed-identity stand-in), devhost shows it with its links, and the link's page answers."""

from __future__ import annotations

import json
import time

import pytest

from tests.devhost_runner import APP_ROOT, start_devhost

pytestmark = pytest.mark.integration

SAMPLE = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]


def test_the_samples_channels_all_reach_devhosts_sink_and_devhost_shows_them(tmp_path) -> None:
    settings = {**SAMPLE, "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *", "RECONCILE_TIMER": "false"}  # no run of their own
    host = start_devhost(tmp_path, settings, workers=1)
    try:
        assert "notification sink" in host.log_text()
        started = host.request("POST", "/api/shutdown", json={"notice_minutes": 0.1, "include": ["ci-alice"]})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while time.monotonic() < deadline and kinds != {"webhook", "teams", "slack", "email"}:
            recorded = host.request("GET", "/devhost/notifications.json").json()
            kinds = {m["kind"] for m in recorded}
            time.sleep(0.3)
        assert kinds == {"webhook", "teams", "slack", "email"}, host.log_text()[-4000:]
        email = next(m for m in recorded if m["kind"] == "email")
        assert email["body"]["recipients"]["to"] == [{"address": "ml-team@contoso.com"}]  # alice is no address
        page = host.request("GET", "/devhost/notifications")
        assert page.status_code == 200 and "Notifications the app sent (4)" in page.text
        assert f"{host.base_url}/api/notices/v1." in page.text  # the links, pointing at devhost itself
        assert host.request("GET", "/devhost/notifications", key=False).status_code == 401
        link = next(m for m in recorded if m["kind"] == "webhook")["body"]["notices"][0]["links"]["review"]
        review = host.request("GET", link, key=False)
        assert review.status_code == 200 and "ci-alice" in review.text
        done = host.wait_for_completion(started.json()["statusQueryGetUri"], timeout=60)
        heads_up = done["output"]["heads_up"]
        assert (heads_up["messages_sent"], heads_up["messages_failed"]) == (4, 0)  # one message per channel
        assert done["output"]["totals"]["stopped"] == 1
    finally:
        host.stop()
