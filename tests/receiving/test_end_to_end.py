"""The issue's flow: an endpoint with a secret on the fake, a receiver on 127.0.0.1, a signed delivery."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fullstory_async import Client, CreateEndpointRequest, EventType
from fullstory_async.receiving import NoteCreatedData, WebhookEvent
from fullstory_async.testing._delivery import deliver_event
from fullstory_async.testing._server import FakeFullstory

NOTE = {"id": "n-9", "author": "ada@example.com", "text": "checkout bug", "notedTime": "2024-05-06T07:08:09.100Z"}


async def test_endpoint_created_on_the_fake_receives_a_verified_event(
    fake_fullstory: FakeFullstory, fullstory_client: Client, serve_receiver: Any
) -> None:
    """Create an endpoint with a secret, deliver with what the fake stored, and get the typed event."""
    events: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        events.append(event)

    site = await serve_receiver("s3cret-on-both-sides", on_event, org_id=fake_fullstory.org_id)
    endpoint = await fullstory_client.webhooks.create_endpoint(
        CreateEndpointRequest(url=site.url, event_types=[EventType("note.created")], secret="s3cret-on-both-sides")
    )
    stored = fake_fullstory.endpoints[endpoint.id]

    async def deliver(secret: str = stored.secret, **kwargs: Any) -> int:
        return await deliver_event(
            site.session,
            stored.url,
            event_name="note.created",
            data=kwargs.pop("data", NOTE),
            secret=secret,
            org_id=fake_fullstory.org_id,
            **kwargs,
        )

    assert await deliver() == 202
    [event] = events
    assert isinstance(event.data, NoteCreatedData)
    assert (event.data.id, event.data.text, event.org_id) == ("n-9", "checkout bug", fake_fullstory.org_id)

    assert await deliver(secret="not-the-endpoint-secret") == 401
    assert await deliver(timestamp=int(time.time()) - 3600) == 401
    status, _ = await site.post(b'{"eventName":"note.created","version":1,"data":{}}', {"Fullstory-Signature": "o:x"})
    assert status == 401
    assert len(events) == 1


async def test_fake_deliver_signs_with_the_stored_secret(
    fake_fullstory: FakeFullstory, fullstory_client: Client, serve_receiver: Any
) -> None:
    """fake.deliver(event, data, endpoint_id=...) reaches the receiver as a verified, typed event."""
    events: list[WebhookEvent] = []
    site = await serve_receiver("deliver-secret-1", events.append, org_id=fake_fullstory.org_id)
    endpoint = await fullstory_client.webhooks.create_endpoint(
        CreateEndpointRequest(url=site.url, event_types=["note.created"], secret="deliver-secret-1")
    )
    assert await fake_fullstory.deliver("note.created", NOTE, endpoint_id=endpoint.id) == 202
    assert await fake_fullstory.deliver("test", {"message": "hello"}, endpoint_id=endpoint.id) == 202
    assert [e.event_name for e in events] == ["note.created", "test"]
    assert isinstance(events[0].data, NoteCreatedData)
    with pytest.raises(ValueError, match="does not subscribe"):
        await fake_fullstory.deliver("segment.created", {}, endpoint_id=endpoint.id)
    with pytest.raises(ValueError, match="no endpoint"):
        await fake_fullstory.deliver("note.created", NOTE, endpoint_id="missing")
