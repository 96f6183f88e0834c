"""`make run`'s heads-up offline: with local.settings.sample.json's channels and DEVHOST_NOTIFY_SINK=on, every channel
kind reaches devhost's notification stand-in (webhook, Teams and Slack through devhost's HTTPS proxy at
*.devhost.invalid; email through the real ACS SDK with the managed-identity stand-in), and devhost shows it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.devhost_runner import APP_ROOT, start_devhost

pytestmark = pytest.mark.integration

SAMPLE = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]


def test_the_samples_channels_all_reach_devhosts_sink_and_devhost_shows_them(tmp_path) -> None:
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        "NOTIFY_CHANNELS": SAMPLE["NOTIFY_CHANNELS"],
        "DEVHOST_NOTIFY_SINK": SAMPLE["DEVHOST_NOTIFY_SINK"],
    }
    host = start_devhost(tmp_path, settings, script_root=APP_ROOT / "tests" / "notice_app", workers=1)
    try:
        assert "notification sink" in host.log_text()
        stop_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        body = {
            "run_id": f"run-{uuid.uuid4().hex[:8]}",
            "workspace": "sub-1/rg-ml/ws-research",
            "stops": [
                {"name": "ci-alice", "stop_at": stop_at, "reason": "stop", "tags": {"owner": "alice@contoso.com"}}
            ],
        }
        started = host.request("POST", "/api/test/notice-run", data=json.dumps(body))
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while time.monotonic() < deadline and kinds != {"webhook", "teams", "slack", "email"}:
            recorded = host.request("GET", "/devhost/notifications.json").json()
            kinds = {m["kind"] for m in recorded}
            time.sleep(0.3)
        assert kinds == {"webhook", "teams", "slack", "email"}, host.log_text()[-4000:]
        email = next(m for m in recorded if m["kind"] == "email")
        assert email["body"]["recipients"]["to"] == [{"address": "alice@contoso.com"}]
        page = host.request("GET", "/devhost/notifications")
        assert page.status_code == 200 and "Notifications the app sent (4)" in page.text
        assert f"{host.base_url}/api/notices/v1." in page.text  # the links, pointing at devhost itself
        assert host.request("GET", "/devhost/notifications", key=False).status_code == 401
        link = next(m for m in recorded if m["kind"] == "webhook")["body"]["notices"][0]["links"]["review"]
        assert host.request("GET", link, key=False).status_code == 200
    finally:
        host.stop()
