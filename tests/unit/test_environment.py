"""FULLSTORY_BASE_URL: honoured by Client() (explicit arguments win), checked like any base URL."""

from __future__ import annotations

import pytest

from fullstory_async import Client, InvalidArgumentError
from fullstory_async.testing import FakeFullstory


async def test_client_reads_the_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two lines fake-server prints, exported, make `Client()` talk to the fake (not production)."""
    async with FakeFullstory() as fake:
        monkeypatch.setenv("FULLSTORY_BASE_URL", fake.url)
        monkeypatch.setenv("FULLSTORY_API_KEY", fake.api_key)
        async with Client() as fs:
            assert fs.base_url == fake.url
            assert await fs.webhooks.list_event_types()


def test_explicit_base_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """`base_url=` beats the environment; the environment beats the key's region."""
    monkeypatch.setenv("FULLSTORY_BASE_URL", "http://127.0.0.1:9/")
    assert Client(api_key="k", base_url="https://api.example.com").base_url == "https://api.example.com"
    assert Client(api_key="eu1.k").base_url == "http://127.0.0.1:9"
    monkeypatch.setenv("FULLSTORY_BASE_URL", "  ")
    assert Client(api_key="eu1.k").base_url == "https://api.eu1.fullstory.com"


def test_environment_base_url_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain-http remote URL from the environment is refused like one passed in."""
    monkeypatch.setenv("FULLSTORY_BASE_URL", "http://api.example.com")
    with pytest.raises(InvalidArgumentError, match="base_url: plain http"):
        Client(api_key="k")
    assert Client(api_key="k", allow_insecure_http=True).base_url == "http://api.example.com"
