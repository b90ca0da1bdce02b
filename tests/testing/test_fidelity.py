"""The fake agrees with the reference's own examples, and with the SDK on what a create may omit."""

from __future__ import annotations

from fullstory_async import CreateEndpointRequest
from fullstory_async.testing import FakeFullstory

from .conftest import Api

DOCS_SUBCATEGORY = (
    "CgsiCW8tSDkxLW5hMRIOCgRTZWF0GgZzeXN0ZW0SEwoHU2VnbWVudBoIZXZlcnlvbmUSEQoIU2VhcmNoaWUa"
    "BTQ5MTY4EhAKBUFsZXJ0EICAgICAqJkL"
)
# The create page's cURL body, byte for byte.
DOCS_BODY = (
    b'{"url": "https://example.com/fullstory-webhooks", "eventTypes": [{"eventName": "recording.event.custom", '
    b'"subcategory": "' + DOCS_SUBCATEGORY.encode() + b'"}], "secret": "w7ixQjN7QEiWRwXUFfXneA"}'
)


async def test_the_references_create_example_is_accepted_and_listed(api: Api) -> None:
    """The docs' cURL create succeeds, and its subcategory is listed among recording.event.custom's."""
    reply = await api.call("POST", "/webhooks/v1/endpoints", data=DOCS_BODY)
    assert reply.status == 200, reply.body
    assert reply.body["id"] == "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M"
    assert reply.body["eventTypes"] == [{"eventName": "recording.event.custom", "subcategory": DOCS_SUBCATEGORY}]
    listed = await api.call("GET", "/webhooks/v1/event-types/recording.event.custom/subcategories")
    assert DOCS_SUBCATEGORY in [d["subcategory"] for d in listed.body["subcategoryDefs"]]


async def test_sdk_and_fake_agree_a_create_may_omit_event_types() -> None:
    """`CreateEndpointRequest(url=...)` (no event types, as the SDK and the docs allow) creates on the fake."""
    async with FakeFullstory() as fake, fake.client() as fs:
        endpoint = await fs.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/quiet"))
    assert endpoint.event_types == ()
    assert fake.endpoints_with_url("https://example.com/quiet")[0].event_types == ()
