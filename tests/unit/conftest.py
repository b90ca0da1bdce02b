"""Shared fixtures for the unit tests: clients on the stub transport (``fake``), the seed page's example."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fullstory_async import Client, RetryPolicy
from tests.fakes import Reply, StubTransport

API_KEY = "na1.T0pS3cretApiKeyValue/ORG42"
SECRET = "w7ixQjN7QEiWRwXUFfXneA"

# The example response of the Create Endpoint page (reference/000_391a3d7169c7600a.txt), verbatim.
SUBCATEGORY = (
    "CgsiCW8tSDkxLW5hMRIOCgRTZWF0GgZzeXN0ZW0SEwoHU2VnbWVudBoIZXZlcnlvbmUSEQoI"
    "U2VhcmNoaWUaBTQ5MTY4EhAKBUFsZXJ0EICAgICAqJkL"
)
SEED_ENDPOINT_BODY = (
    b"{\n"
    b'"id": "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M",\n'
    b'"created": "2020-04-01T21:53:58.200Z",\n'
    b'"modified": "2020-04-01T21:53:58.200Z",\n'
    b'"enabled": true,\n'
    b'"url": "https://example.com/fullstory-webhooks",\n'
    b'"eventTypes": [\n'
    b"{\n"
    b'"eventName": "recording.event.custom",\n'
    b'"subcategory": "' + SUBCATEGORY.encode() + b'"\n'
    b"}\n"
    b"]\n"
    b"}"
)


@pytest.fixture
def api_key() -> str:
    """Return the API key the ``fake`` clients use (it must never leak)."""
    return API_KEY


@pytest.fixture
def secret() -> str:
    """Return an endpoint secret (it must never leak)."""
    return SECRET


@pytest.fixture
def seed_body() -> bytes:
    """Return the Create Endpoint example response body of the seed page."""
    return SEED_ENDPOINT_BODY


MakeClient = Callable[..., tuple[Client, StubTransport]]


@pytest.fixture
async def fake() -> AsyncIterator[MakeClient]:
    """Make clients on the in-memory transport: ``fake(*replies, **kwargs) -> (client, transport)``.

    Defaults: ``api_key=API_KEY`` and ``retry=RetryPolicy(wait=False)``. The clients are
    closed at teardown.
    """
    clients: list[Client] = []

    def make(*replies: Reply, **kwargs: Any) -> tuple[Client, StubTransport]:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("retry", RetryPolicy(wait=False))
        transport = StubTransport(*replies)
        client = Client(transport=transport, **kwargs)
        clients.append(client)
        return client, transport

    yield make
    for client in clients:
        await client.aclose()
