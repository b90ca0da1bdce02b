"""Browser fixtures: one Chromium for the module (Playwright), a seeded inbox, the console as a real CLI process.

The browser tests run only with ``FULLSTORY_TEST_BROWSER=1`` (``nox -s tests-3.12`` sets it; the
other Pythons deselect them): Debian's Chromium at ``shutil.which("chromium")``, never a browser
Playwright downloads. With the switch on, a missing ``chromium`` skips them locally and fails
them under CI (``CI`` set), as the PostgreSQL tests do.

Nothing on a page may come from anywhere but the console under test: every page's requests go
through a route that lets only the console's own origin through and records (and aborts) any
other, and the test fails at teardown if one was attempted. A JavaScript dialog other than
the console's own ``confirm()`` fails it too, as does a Content-Security-Policy violation
reported in the page's console.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import attrs
import pytest

from fullstory_async.receiving import Inbox, InboxAttempt, delivery_key, open_inbox, signed_delivery
from fullstory_async.testing import ManualClock
from tests.receiving.conftest import empty_inbox_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Route

T = TypeVar("T")
SWITCH = "FULLSTORY_TEST_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
START_TIMEOUT = 20.0
"""Seconds the console process may take to print its URL (a guard against a hang, not a measure)."""

ORG = "o-console"
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
HOSTILE_TYPE = "<b onmouseover=alert(1)>bold</b>"
NOT_UTF8 = b'{"eventName":"note.created","version":1,"data":{"text":"caf\xe9 cr\xe8me"}}'  # Latin-1


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch Debian's Chromium once for the module (headless, no network of its own).

    Module-scoped, so it is closed before the suite's next folder: between its calls Playwright's
    sync API marks its event loop as running in this thread, which no asyncio test could share.
    """
    if os.environ.get(SWITCH) != "1":
        pytest.skip(f"browser tests run with {SWITCH}=1 (nox -s tests-3.12 sets it)")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is missing (pip install -e '.[browser]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@attrs.define
class Guard:
    """What a page tried that a test forbids: requests off the console's origin, dialogs, CSP violations."""

    origins: set[str] = attrs.field(factory=set)
    foreign: list[str] = attrs.field(factory=list)
    dialogs: list[tuple[str, str]] = attrs.field(factory=list)
    csp: list[str] = attrs.field(factory=list)

    def route(self, route: Route) -> None:
        parts = urlsplit(route.request.url)
        if f"{parts.scheme}://{parts.netloc}" in self.origins:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "confirm":
            dialog.accept()  # the console's "Replay matching" confirmation
        else:
            dialog.dismiss()

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)


@pytest.fixture
def guard() -> Guard:
    """Return the test's `Guard`: the allowed origins (each console started adds its own) and what pages attempted."""
    return Guard()


@pytest.fixture
def context(browser: Browser, guard: Guard) -> Iterator[BrowserContext]:
    """Open a fresh browser context (cookies, storage) whose pages reach only the consoles the test started."""
    made = browser.new_context(ignore_https_errors=True)  # the TLS test's private CA
    made.set_default_timeout(5000)
    made.route("**/*", lambda route: guard.route(route))
    made.on("page", lambda page: _watch(page, guard))
    try:
        yield made
    finally:
        made.close()
    assert guard.foreign == [], f"the page requested something off the console's origin: {guard.foreign}"
    assert [d for d in guard.dialogs if d[0] != "confirm"] == [], f"a dialog fired: {guard.dialogs}"
    assert guard.csp == [], f"Content-Security-Policy violations: {guard.csp}"


def _watch(page: Page, guard: Guard) -> None:
    page.on("dialog", lambda dialog: guard.dialog(dialog))
    page.on("console", lambda message: guard.console(message))


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """Open a page in the test's browser context."""
    return context.new_page()


# ------------------------------------------------------------------------------------------------ the inbox

AGO = 3 * 3600.0
"""The first seeded delivery was received this many seconds before the seeding."""

STEP = 600.0
"""Seconds between two seeded deliveries (received at ``t0``, ``t0 + STEP``, ...)."""

# (name, event type, final status) oldest first; the bodies are made by `_body`.
SEEDED: tuple[tuple[str, str | None, str], ...] = (
    ("note-0", "note.created", "done"),
    ("segment-1", "segment.created", "dead"),
    ("metric-2", "metric.alert", "done"),
    ("note-3", "note.created", "pending"),
    ("trend-4", "segment.trend.alert", "done"),
    ("note-5", "note.created", "dead"),
    ("latin1", None, "done"),
    ("note-7", "note.created", "done"),
    ("segment-8", "segment.created", "pending"),
    ("metric-9", "metric.alert", "dead"),
    ("xss", "note.created", "done"),
    ("segment-11", "segment.created", "done"),
    ("note-12", "note.created", "pending"),
    ("metric-13", "metric.alert", "done"),
    ("hostile-type", HOSTILE_TYPE, "done"),
)
DEAD_ERROR = "downstream answered 500: <img src=x onerror=alert(1)>"


def _body(name: str, event_type: str | None) -> bytes:
    if name == "latin1":
        return NOT_UTF8
    if name == "xss":
        return signed_delivery(
            "note.created", {"text": XSS, "noteUrl": "https://app.fullstory.com/n/1"}, secret="s", org_id=ORG
        )[0]
    assert event_type is not None
    return signed_delivery(event_type, {"id": name, "name": f"Seeded {name}"}, secret="s", org_id=ORG)[0]


@attrs.frozen
class Seeded:
    """The seeded inbox: its URL and each delivery's full key by name (newest first in ``newest_first``)."""

    url: str
    keys: dict[str, str]
    t0: float

    @property
    def newest_first(self) -> list[str]:
        return [self.keys[name] for name, _, _ in reversed(SEEDED)]

    def names(self, status: str | None = None, event_type: str | None = None) -> list[str]:
        """Return the seeded names of a status and/or event type, newest first."""
        return [
            name
            for name, kind, final in reversed(SEEDED)
            if (status is None or final == status) and (event_type is None or kind == event_type)
        ]

    def received(self, name: str) -> datetime:
        index = [n for n, _, _ in SEEDED].index(name)
        return datetime.fromtimestamp(self.t0 + index * STEP, UTC)


async def seed(inbox: Inbox, clock: ManualClock) -> dict[str, str]:
    """Store `SEEDED` through the Inbox API, then run each to its final status with an attempt history."""
    keys: dict[str, str] = {}
    for name, event_type, _ in SEEDED:
        body = _body(name, event_type)
        assert await inbox.put(body, org_id=ORG)
        keys[name] = delivery_key(ORG, body)
        clock.advance(STEP)
    final = {keys[name]: status for name, _, status in SEEDED}
    for record in await inbox.claim(100, lease=60):
        status = final[record.key]
        started = clock()
        if status == "done":
            assert await inbox.complete(record, attempt=InboxAttempt(1, started, 0.042, "done"))
        elif status == "dead":
            assert await inbox.bury(
                record, error=DEAD_ERROR, attempt=InboxAttempt(1, started, 0.317, "dead", DEAD_ERROR)
            )
        else:
            assert await inbox.release(record)
    return keys


def seed_inbox(url: str) -> Seeded:
    """Seed the inbox at ``url`` (`SEEDED`, the first received `AGO` seconds ago) and return its keys."""
    t0 = float(int(time.time() - AGO))  # whole seconds: a filter typed to the microsecond matches exactly

    async def run() -> dict[str, str]:
        clock = ManualClock(t0)
        async with open_inbox(url, clock=clock) as inbox:
            return await seed(inbox, clock)

    return Seeded(url, in_a_thread(run), t0)


def in_a_thread(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` with `asyncio.run` on a thread of its own (Playwright's loop holds this thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """Return a seeded SQLite inbox."""
    return seed_inbox(f"sqlite:///{tmp_path}/inbox.db")


@pytest.fixture(params=["sqlite", "postgres"])
def seeded_each(request: pytest.FixtureRequest, tmp_path: Path) -> Seeded:
    """Return a seeded inbox of each engine (PostgreSQL: the test database, emptied first)."""
    return seed_inbox(in_a_thread(lambda: empty_inbox_url(request.param, tmp_path)))


# ------------------------------------------------------------------------------------------------ the console


_URL_LINE = re.compile(r"console at (https?)://(\S+?):(\d+)/")


@attrs.define
class Console:
    """A ``fullstory-async inbox serve`` process; ``url`` reaches it through 127.0.0.1 (no trailing slash)."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str]
    reader: threading.Thread

    def output(self) -> str:
        """Return what the process wrote to stderr and stdout so far."""
        return "".join(self.lines)


StartConsole = Callable[..., Console]


@pytest.fixture
def console(guard: Guard, tmp_path: Path) -> Iterator[StartConsole]:
    """Start ``python -m fullstory_async inbox serve --inbox URL --port 0 ARGS``; stop each at teardown.

    ``env`` adds environment variables. The URL is read from the line the process prints; its
    origin is the only one the test's pages may reach.
    """
    started: list[Console] = []

    def start(inbox_url: str, *args: str, env: dict[str, str] | None = None) -> Console:
        command = [sys.executable, "-m", "fullstory_async", "inbox", "serve", "--inbox", inbox_url, "--port", "0"]
        process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=tmp_path,  # the package comes from the installation (or PYTHONPATH), not the working directory
        )
        lines: list[str] = []
        arrived: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                arrived.put(line)
            arrived.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        console = Console(process, "", lines, reader)
        started.append(console)
        while True:
            try:
                line = arrived.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"the console printed no URL in {START_TIMEOUT} s:\n{console.output()}")
            if line is None:
                pytest.fail(f"the console exited ({process.wait()}) before printing its URL:\n{console.output()}")
            found = _URL_LINE.search(line)
            if found:
                scheme, _, port = found.groups()
                console.url = f"{scheme}://127.0.0.1:{port}"
                guard.origins.add(console.url)
                return console

    try:
        yield start
    finally:
        for each in started:
            each.process.terminate()
            try:
                each.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                each.process.kill()
                each.process.wait()
            each.reader.join(timeout=10)
            if each.process.stdout is not None:
                each.process.stdout.close()
