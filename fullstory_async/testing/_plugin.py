"""The pytest plugin (entry point ``pytest11``): fixtures ``fake_fullstory`` and ``fullstory_client``.

Installed with the package, so it loads in every pytest session; importing it is cheap
(no aiohttp, no server) and works without pytest-asyncio. The fixtures are async, so
they need an async plugin: with pytest-asyncio they are ``pytest_asyncio.fixture``
fixtures (function loop scope); without it they are plain ``pytest.fixture`` async
generators, which anyio's pytest plugin runs for tests marked ``@pytest.mark.anyio``.

::

    async def test_provisioning(fake_fullstory, fullstory_client):
        await fullstory_client.webhooks.create_endpoint(...)
        assert len(fake_fullstory.endpoints_with_url("https://example.com/hook")) == 1
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from fullstory_async import Client
    from fullstory_async.testing._server import FakeFullstory

_F = TypeVar("_F", bound=Callable[..., Any])
_decorate: Callable[[Any], Any]
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    _decorate = pytest.fixture
else:
    _decorate = pytest_asyncio.fixture(loop_scope="function")


def _fixture(func: _F) -> _F:
    return cast("_F", _decorate(func))


@_fixture
async def fake_fullstory() -> AsyncIterator[FakeFullstory]:
    """Yield a started `FakeFullstory` on 127.0.0.1 (a free port); stop it after the test."""
    from fullstory_async.testing._server import FakeFullstory

    async with FakeFullstory() as fake:
        yield fake


@_fixture
async def fullstory_client(fake_fullstory: FakeFullstory) -> AsyncIterator[Client]:
    """Yield a `Client` bound to ``fake_fullstory`` whose retries do not sleep."""
    from fullstory_async import RetryPolicy

    async with fake_fullstory.client(retry=RetryPolicy(wait=False)) as client:
        yield client
