"""Fixtures for the CLI tests: a clean environment (``cli``, ``main()`` with captured output, is suite-wide).

The CLI's ``main()`` runs its own event loop (``asyncio.run``), so the tests are plain sync
tests and a server they talk to with ``--base-url`` lives on another thread's loop: the
``served`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SECRET_VARS = ("NOTES_WEBHOOK_SECRET", "ALERTS_WEBHOOK_SECRET", "CHECKOUT_WEBHOOK_SECRET", "MOBILE_WEBHOOK_SECRET")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No API key and no example secrets in the environment (the CLI picks the embedded fake).

    Autouse, so it runs before ``served`` (tests/conftest.py) puts the served fake's key back.
    """
    monkeypatch.delenv("FULLSTORY_API_KEY", raising=False)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


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
