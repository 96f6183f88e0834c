"""A real headless Chromium driven over the DevTools protocol, for pages a person clicks through (open a link, press a
button, read the page it leads to). `--dump-dom` shows a page; this presses its buttons: the mouse events go to the
button's place on screen, so the browser submits the form itself, as it would for a person.

Debian's `chromium` (apt-get install -y chromium); the DevTools websocket is spoken with aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get update && apt-get install -y chromium"


@dataclass(frozen=True)
class Visit:
    """What the person saw after pressing the button: the page's title and text."""

    title: str
    text: str


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        await self.ws.send_json({"id": wanted, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(json.loads((await self.ws.receive(timeout=remaining)).data))
        self.events.clear()

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def _press(url: str, button: str, screenshot: Path | None) -> Visit:
    import aiohttp

    assert CHROMIUM
    # A scratch profile: Chromium's helpers (crashpad, utility processes) may still be writing to it as it goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--window-size=900,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: ending it ends Chromium's helpers too
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline:
                    raise TimeoutError("Chromium did not open its DevTools port")
                await asyncio.sleep(0.05)
            port = port_file.read_text().split()[0]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    page = next(t for t in await response.json() if t["type"] == "page")
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    return await _visit(_Session(ws), url, button, screenshot)
        finally:
            _end_group(proc)


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Chromium and its helpers, then SIGKILL to whatever of the group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


async def _visit(session: _Session, url: str, button: str, screenshot: Path | None) -> Visit:
    await session.call("Page.enable")
    await session.call("Page.navigate", url=url)
    await session.wait_for("Page.loadEventFired")
    find = (
        "(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === "
        f"{json.dumps(button)}); if (!b) return null; b.scrollIntoView(); const r = b.getBoundingClientRect(); "
        "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    where = await session.evaluate(find)
    if where is None:
        text = await session.evaluate("document.body.innerText")
        raise AssertionError(f"no button {button!r} on the page:\n{text}")
    x, y = where
    for kind in ("mousePressed", "mouseReleased"):
        await session.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    await session.wait_for("Page.loadEventFired")
    visit = Visit(await session.evaluate("document.title"), await session.evaluate("document.body.innerText"))
    if screenshot is not None:
        shot = await session.call("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return visit


def press_button(url: str, button: str, screenshot: Path | None = None) -> Visit:
    """Open `url` in headless Chromium, press the button labelled `button`, and return the page it leads to."""
    return asyncio.run(_press(url, button, screenshot))
