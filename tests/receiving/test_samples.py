"""Sample deliveries of every documented event: typed without loss, and sent by FakeFullstory.deliver by default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fullstory_async import CreateEndpointRequest, EventType
from fullstory_async.receiving import WebhookEvent, add_webhook_route, signed_delivery, verify
from fullstory_async.receiving._envelope import DATA_TYPES
from fullstory_async.testing import FakeFullstory, sample_event_data

SECRET = "wh-secret-samples-5Tq"


def unset_fields(record: Any, where: str = "") -> list[str]:
    """Dotted names of the record's fields (nested records included) that came out None or empty."""
    missing = []
    for field in attrs.fields(type(record)):
        value = getattr(record, field.name)
        if value is None or value == () or value == {}:
            missing.append(where + field.name)
        elif attrs.has(type(value)):
            missing += unset_fields(value, f"{where}{field.name}.")
    return missing


@pytest.mark.parametrize("event_name", sorted(DATA_TYPES))
def test_every_documented_event_has_a_sample_that_fills_its_record(event_name: str) -> None:
    """Each sample, signed and verified, types into its record with every field set (nothing drifts)."""
    body, headers = signed_delivery(event_name, sample_event_data(event_name), secret=SECRET, org_id="o-1")
    event = verify(body, headers["Fullstory-Signature"], SECRET)
    assert isinstance(event.data, DATA_TYPES[event_name])
    assert unset_fields(event.data) == []


def test_samples_are_fresh_copies_and_unknown_names_are_refused() -> None:
    """Changing a returned sample does not change the next; an undocumented name is a ValueError naming it."""
    sample_event_data("note.created")["pageInfo"]["country"] = "FR"
    assert sample_event_data("note.created")["pageInfo"]["country"] == "US"
    with pytest.raises(ValueError, match=r"note\.updated"):
        sample_event_data("note.updated")


async def test_fake_deliver_sends_the_sample_when_no_data_is_given() -> None:
    """FakeFullstory.deliver(name, endpoint_id=...) posts the documented sample, signed with the endpoint's secret."""
    seen: list[WebhookEvent] = []

    async def record(event: WebhookEvent) -> None:
        seen.append(event)

    app = web.Application()
    add_webhook_route(app, "/hooks", SECRET, record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with FakeFullstory() as fake, fake.client() as fs:
            endpoint = await fs.webhooks.create_endpoint(
                CreateEndpointRequest(str(server.make_url("/hooks")), [EventType("note.created")], secret=SECRET)
            )
            assert await fake.deliver("note.created", endpoint_id=endpoint.id) == 202
    finally:
        await server.close()
    [event] = seen
    assert isinstance(event.raw["data"], Mapping)
    assert event.raw["data"] == sample_event_data("note.created")
