"""FakeFullstory lifecycle, the bare aiohttp app, inspection helpers, the request log, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fullstory_async.testing import (
    Catalogue,
    EventTypeDef,
    FakeFullstory,
    Fault,
    StoredEventType,
    SubcategoryDef,
    endpoint_id,
)
from fullstory_async.testing._store import EndpointStore

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
URL = "https://example.com/hook"


async def test_binds_loopback_on_a_free_port_and_stops_fast() -> None:
    """`async with` serves on 127.0.0.1:<free port>; two fakes get different ports; stop is quick."""
    async with asyncio.timeout(1.0):  # a hang guard: start and stop are quick
        async with FakeFullstory() as one, FakeFullstory() as two:
            assert one.url.startswith("http://127.0.0.1:")
            assert one.url != two.url
            assert repr(one) == f"<FakeFullstory {one.url} endpoints=0>"


async def test_lifecycle_errors_and_idempotent_stop() -> None:
    """Url before start raises; a second start raises; stop twice is fine."""
    fake = FakeFullstory()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.url
    await fake.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await fake.start()
    finally:
        await fake.stop()
    await fake.stop()


async def test_a_stopped_fake_can_start_again_with_its_state() -> None:
    """start() after stop() serves again (new free port) with the same endpoints and keys."""
    fake = FakeFullstory()
    fake.add_endpoint(URL)
    async with fake:
        pass
    async with fake, fake.client() as fs:
        assert [e.url async for e in fs.webhooks.list_endpoints()] == [URL]


async def test_the_app_works_with_aiohttp_test_utilities() -> None:
    """fake.app runs under aiohttp's TestServer without binding through FakeFullstory."""
    fake = FakeFullstory()
    async with TestClient(TestServer(fake.app)) as client:
        response = await client.post(
            ENDPOINTS,
            json={"url": URL, "eventTypes": [{"eventName": "note.created"}]},
            headers={"Authorization": f"Basic {fake.api_key}"},
        )
        assert response.status == 200
    assert list(fake.endpoints) == [endpoint_id(URL)]


async def test_endpoints_mapping_is_live_and_read_only(api: Api) -> None:
    """fake.endpoints reflects API changes and cannot be written to."""
    view = api.fake.endpoints
    await api.create(URL, secret="s")
    assert view[endpoint_id(URL)].url == URL
    with pytest.raises(TypeError):
        view["x"] = view[endpoint_id(URL)]  # type: ignore[index]


def test_add_endpoint_validates_against_the_catalogue() -> None:
    """add_endpoint stores like a create, and raises ValueError where the API would 400."""
    fake = FakeFullstory()
    sub = fake.catalogue.get("metric.alert").subcategories[0].subcategory  # type: ignore[union-attr]
    stored = fake.add_endpoint(URL, ["note.created", StoredEventType("metric.alert", sub)], "s", enabled=False)
    assert (stored.enabled, stored.secret, [e.event_name for e in stored.event_types]) == (
        False,
        "s",
        ["note.created", "metric.alert"],
    )
    for url, types, match in [
        ("ftp://x", ["note.created"], "http or https"),
        ("https://example.com/2", ["nope"], "unknown event type"),
        ("https://example.com/3", ["metric.alert"], "subcategory is required"),
    ]:
        with pytest.raises(ValueError, match=match):
            fake.add_endpoint(url, types)


def test_many_endpoints_share_event_type_tuples() -> None:
    """Endpoints with the same configuration share one event-types tuple (memory)."""
    fake = FakeFullstory()
    a = fake.add_endpoint("https://example.com/a")
    b = fake.add_endpoint("https://example.com/b")
    assert a.event_types is b.event_types


async def test_custom_catalogue(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """A user catalogue replaces the seeded one for listing and validation."""
    catalogue = [EventTypeDef("order.paid", "Order Paid"), EventTypeDef("alert", "Alert", [SubcategoryDef("opq")])]
    async with FakeFullstory(catalogue=catalogue) as fake:
        api = api_factory(session, fake)
        types = await api.call("GET", "/webhooks/v1/event-types")
        ok = await api.create(URL, [{"eventName": "alert", "subcategory": "opq"}])
        refused = await api.create("https://example.com/2", [{"eventName": "note.created"}])
    assert [d["eventName"] for d in types.body["eventDefs"]] == ["order.paid", "alert"]
    assert ok.status == 200
    assert refused.status == 400


def test_catalogue_rules() -> None:
    """Catalogues refuse duplicate or empty names; has_subcategories may be forced on."""
    with pytest.raises(ValueError, match="duplicate"):
        Catalogue([EventTypeDef("a"), EventTypeDef("a")])
    with pytest.raises(ValueError, match="empty"):
        Catalogue([EventTypeDef("")])
    forced = EventTypeDef("alerts", has_subcategories=True)
    assert forced.subcategories == ()
    assert "alerts" in Catalogue([forced])
    assert len(Catalogue.default()) == 6


async def test_request_log_records_and_redacts(api: Api) -> None:
    """The log keeps method, path, query, headers (key redacted), body, status and role."""
    await api.create(URL, secret="the-secret")
    await api.call("GET", ENDPOINTS, params={"limit": "5"})
    create, listing = api.fake.requests
    assert (create.method, create.path, create.status, create.operation) == ("POST", ENDPOINTS, 200, "create_endpoint")
    assert create.json()["secret"] == "the-secret"
    assert create.key_role == "admin"
    assert create.headers["Authorization"] == "Basic <redacted>"
    assert api.fake.api_key not in repr(create) + str(create.headers)
    assert "the-secret" not in repr(create)
    assert listing.query == {"limit": "5"}
    assert api.fake.requests.for_operation("list_endpoints") == [listing]


async def test_request_log_is_bounded_or_off(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """request_log_size bounds the log (oldest dropped); 0 records nothing."""
    async with FakeFullstory(request_log_size=3) as bounded, FakeFullstory(request_log_size=0) as off:
        for fake in (bounded, off):
            api = api_factory(session, fake)
            for i in range(5):
                await api.call("GET", ENDPOINTS, params={"limit": str(i + 1)})
    assert [r.query["limit"] for r in bounded.requests] == ["3", "4", "5"]
    assert (len(off.requests), off.requests.enabled) == (0, False)


async def test_reset_forgets_state_but_keeps_keys(api: Api) -> None:
    """reset() clears endpoints, requests and faults; keys and catalogue stay."""
    key = api.fake.api_key
    await api.create(URL)
    api.fake.faults.add(Fault.server_error())
    api.fake.reset()
    assert (len(api.fake.endpoints), len(api.fake.requests), len(api.fake.faults)) == (0, 0, 0)
    assert api.fake.api_key == key
    assert (await api.create(URL)).status == 200


async def test_a_failing_handler_answers_500_and_logs(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in a handler is a 500 server_error, logged with the operation."""

    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(EndpointStore, "page", boom)
    reply = await api.call("GET", ENDPOINTS)
    assert (reply.status, reply.body["code"]) == (500, "server_error")
    assert "list_endpoints" in caplog.text


async def test_standalone_server_prints_url_and_key_and_stops_on_sigterm(
    session: aiohttp.ClientSession,
) -> None:
    """`python -m fullstory_async.testing` prints the URL and key, serves, and exits 0 on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fullstory_async.testing",
        "--port",
        "0",
        "--endpoints",
        "3",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert process.stdout is not None
        lines = [(await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip() for _ in range(3)]
        settings = dict(line.split("=", 1) for line in lines)
        async with session.get(
            settings["FULLSTORY_BASE_URL"] + ENDPOINTS,
            headers={"Authorization": f"Basic {settings['FULLSTORY_API_KEY']}"},
        ) as response:
            assert response.status == 200
            assert len((await response.json())["endpoints"]) == 3
        assert settings["FULLSTORY_READ_ONLY_API_KEY"].endswith("/FAKEORG")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, stderr.decode()
