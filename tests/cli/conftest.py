"""Fixtures for the CLI tests: a FakeFullstory served from a background thread, a clean environment.

The CLI's ``main()`` runs its own event loop (``asyncio.run``), so the tests are plain sync
tests and a server they talk to with ``--base-url`` must live on another thread's loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fullstory_async.cli import main
from fullstory_async.testing import FakeFullstory

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SECRET_VARS = ("NOTES_WEBHOOK_SECRET", "ALERTS_WEBHOOK_SECRET", "CHECKOUT_WEBHOOK_SECRET", "MOBILE_WEBHOOK_SECRET")


class ServedFake:
    """A `FakeFullstory` running on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-fake", daemon=True)
        self.thread.start()
        self.fake: FakeFullstory = self.run(self._start())
        self.url = self.fake.url
        self.api_key = self.fake.api_key

    @staticmethod
    async def _start() -> FakeFullstory:
        fake = FakeFullstory()
        await fake.start()
        return fake

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the fake's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, func: Callable[[], T]) -> T:
        """Run a plain function on the fake's loop thread (e.g. ``fake.add_endpoint``)."""

        async def wrapper() -> T:
            return func()

        return self.run(wrapper())

    def urls(self) -> set[str]:
        """Return the URLs of the stored endpoints."""
        return self.call(lambda: {endpoint.url for endpoint in self.fake.endpoints.values()})

    def close(self) -> None:
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No API key and no example secrets in the environment: the CLI picks the embedded fake."""
    monkeypatch.delenv("FULLSTORY_API_KEY", raising=False)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def served(clean_env: pytest.MonkeyPatch) -> Iterator[ServedFake]:
    """Serve a FakeFullstory on 127.0.0.1 from a background thread; put its key in FULLSTORY_API_KEY."""
    served = ServedFake()
    clean_env.setenv("FULLSTORY_API_KEY", served.api_key)
    try:
        yield served
    finally:
        served.close()


class Run:
    """What one ``main()`` call returned and printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json_lines(self) -> list[dict[str, Any]]:
        """Stdout parsed as JSON Lines."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Call ``main(args)`` and capture its exit status, stdout and stderr."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal() -> type[Terminal]:
    """Return the `Terminal` stream class (a StringIO whose ``isatty()`` is true)."""
    return Terminal


@pytest.fixture
def examples() -> Path:
    """Return the repository's ``examples/`` folder."""
    return EXAMPLES
