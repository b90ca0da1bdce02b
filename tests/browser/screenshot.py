"""Take the docs' screenshot of the console: ``python tests/browser/screenshot.py`` (not part of the test run).

Seeds a SQLite inbox with a day of realistic deliveries (``bench/_seed.py``), starts
``fullstory-async inbox serve`` on it, opens the list in Debian's Chromium (the test suite's
launch flags; nothing but the console reachable) and writes ``docs/img/console.png``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _seed import ORG, seed_inbox  # noqa: E402 - the paths above first

from fullstory_async.receiving import InboxAttempt, delivery_key, open_inbox, signed_delivery  # noqa: E402
from fullstory_async.testing import ManualClock  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS  # noqa: E402

OUT = ROOT / "docs" / "img" / "console.png"
EVENTS = 3_000


LATEST = (  # the last ten minutes, newest last: a mix of outcomes at the top of the list
    ("note.created", "done"),
    ("segment.trend.alert", "dead"),
    ("recording.event.custom", "done"),
    ("metric.alert", "pending"),
    ("note.created", "done"),
    ("recording.event.custom", "dead"),
    ("segment.created", "done"),
    ("note.created", "pending"),
)
ERROR = "HTTP 503 from the service: upstream unavailable"


async def latest(url: str) -> None:
    """Store `LATEST` (received over the last ten minutes) and run each to its status, through the Inbox API."""
    clock = ManualClock(time.time() - 590)
    async with open_inbox(url, clock=clock) as inbox:
        wanted = {}
        for n, (kind, status) in enumerate(LATEST):
            body, _ = signed_delivery(kind, {"id": f"latest-{n}"}, secret="unused", org_id=ORG)
            await inbox.put(body, org_id=ORG)
            wanted[delivery_key(ORG, body)] = status
            clock.advance(70)
        for record in await inbox.claim(10_000, lease=60):
            status = wanted.get(record.key)
            if status == "done":
                await inbox.complete(record, attempt=InboxAttempt(1, clock(), 0.04, "done"))
            elif status == "dead":
                await inbox.bury(record, error=ERROR, attempt=InboxAttempt(1, clock(), 0.2, "dead", ERROR))
            else:
                await inbox.release(record)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/inbox.db"
        asyncio.run(seed_inbox(url, EVENTS, days=1.0, now=time.time() - 600))
        asyncio.run(latest(url))
        command = [sys.executable, "-m", "fullstory_async", "inbox", "serve", "--inbox", url, "--port", "0"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert process.stderr is not None
            found = None
            for line in process.stderr:
                found = re.search(r"console at (https?://\S+?:\d+)/", line)
                if found:
                    break
            if found is None:
                raise SystemExit(f"the console exited ({process.wait()}) without printing its URL")
            base = found.group(1)
            origin = f"http://127.0.0.1:{urlsplit(base).port}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
                page.route(
                    "**/*",
                    lambda route: route.continue_() if route.request.url.startswith(origin + "/") else route.abort(),
                )
                page.goto(origin + "/")
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
