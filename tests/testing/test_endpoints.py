"""Create, get, update and delete endpoints through raw HTTP: exact JSON and statuses."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import aiohttp
import pytest

from fullstory_async.testing import FakeFullstory, ManualClock, endpoint_id

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
DOCS_URL = "https://example.com/fullstory-webhooks"
DOCS_ID = "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M"
NOTE = {"eventName": "note.created"}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def custom_subcategory(fake: FakeFullstory) -> str:
    definition = fake.catalogue.get("recording.event.custom")
    assert definition is not None
    return definition.subcategories[0].subcategory


async def test_create_returns_the_documented_endpoint_object(api: Api) -> None:
    """Create answers 200 with id, created, modified, enabled, url, eventTypes and no secret."""
    sub = custom_subcategory(api.fake)
    reply = await api.create(DOCS_URL, [{"eventName": "recording.event.custom", "subcategory": sub}], secret="s3cr3t")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == {
        "id": DOCS_ID,
        "created": reply.body["created"],
        "modified": reply.body["created"],
        "enabled": True,
        "url": DOCS_URL,
        "eventTypes": [{"eventName": "recording.event.custom", "subcategory": sub}],
    }
    assert RFC3339_MS.match(reply.body["created"])
    assert "secret" not in reply.raw.decode()


async def test_ids_are_unpadded_base64url_of_the_url() -> None:
    """endpoint_id reproduces the documented example id and decodes back to the URL."""
    assert endpoint_id(DOCS_URL) == DOCS_ID
    weird = "https://example.com/?q=~~~>>>"
    assert "=" not in endpoint_id(weird)
    assert base64.urlsafe_b64decode(endpoint_id(weird) + "==").decode() == weird


async def test_timestamps_use_the_injected_wall_clock(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """created/modified come from wall_clock, in RFC 3339 with milliseconds and Z."""
    now = ManualClock(1585778038.2)  # 2020-04-01T21:53:58.200Z, the docs' example
    async with FakeFullstory(wall_clock=now) as fake:
        api = api_factory(session, fake)
        created = await api.create(DOCS_URL)
        now.advance(61.5)
        updated = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"secret": "new"})
    assert created.body["created"] == "2020-04-01T21:53:58.200Z"
    assert updated.body["created"] == "2020-04-01T21:53:58.200Z"
    assert updated.body["modified"] == "2020-04-01T21:54:59.700Z"


async def test_the_secret_is_stored_but_never_returned(api: Api) -> None:
    """The secret is kept for signing (fake.endpoints) but absent from every response and repr."""
    await api.create(DOCS_URL, secret="top-secret-value")
    stored = api.fake.endpoints[DOCS_ID]
    assert stored.secret == "top-secret-value"
    assert "top-secret-value" not in repr(stored)
    for path in (f"{ENDPOINTS}/{DOCS_ID}", ENDPOINTS):
        reply = await api.call("GET", path)
        assert "top-secret-value" not in reply.raw.decode()
        assert "secret" not in reply.raw.decode()


async def test_snake_case_request_fields_are_accepted(api: Api) -> None:
    """event_types/event_name are accepted in requests; responses stay camelCase."""
    reply = await api.call(
        "POST", ENDPOINTS, json={"url": DOCS_URL, "event_types": [{"event_name": "note.created"}], "secret": "x"}
    )
    assert reply.status == 200
    assert reply.body["eventTypes"] == [{"eventName": "note.created"}]


async def test_get_returns_the_endpoint_and_404_for_unknown_ids(api: Api) -> None:
    """Get answers the stored endpoint; an unknown id is the documented 404."""
    created = await api.create(DOCS_URL)
    assert (await api.call("GET", f"{ENDPOINTS}/{DOCS_ID}")).body == created.body
    missing = await api.call("GET", f"{ENDPOINTS}/bm9wZQ")
    assert (missing.status, missing.body) == (
        404,
        {"message": "Requested resource does not exist", "code": "resource_not_found"},
    )


async def test_update_without_disabled_re_enables(api: Api) -> None:
    """An update that omits `disabled` enables the endpoint again (documented gotcha)."""
    await api.create(DOCS_URL)
    disabled = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"disabled": True})
    assert disabled.body["enabled"] is False
    assert api.fake.endpoints[DOCS_ID].enabled is False
    still = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"disabled": True, "secret": "x"})
    assert still.body["enabled"] is False
    enabled = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"secret": "rotated"})
    assert enabled.body["enabled"] is True
    assert api.fake.endpoints[DOCS_ID].secret == "rotated"


async def test_update_with_empty_fields_changes_nothing(api: Api) -> None:
    """Absent or empty url, secret and eventTypes leave those fields unchanged."""
    await api.create(DOCS_URL, secret="keep")
    reply = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"url": "", "secret": "", "eventTypes": []})
    assert reply.status == 200
    assert (reply.body["id"], reply.body["url"], reply.body["eventTypes"]) == (DOCS_ID, DOCS_URL, [NOTE])
    assert api.fake.endpoints[DOCS_ID].secret == "keep"
    empty_body = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", data=b"")
    assert empty_body.status == 200


async def test_update_replaces_event_types(api: Api) -> None:
    """A non-empty eventTypes list replaces the whole set."""
    await api.create(DOCS_URL)
    reply = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"eventTypes": [{"eventName": "segment.created"}]})
    assert reply.body["eventTypes"] == [{"eventName": "segment.created"}]


async def test_changing_the_url_changes_the_id(api: Api) -> None:
    """A URL change gives the endpoint a new id; the old id is then 404."""
    await api.create(DOCS_URL, secret="s")
    new_url = "https://example.com/moved"
    reply = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"url": new_url})
    assert (reply.body["id"], reply.body["url"]) == (endpoint_id(new_url), new_url)
    assert (await api.call("GET", f"{ENDPOINTS}/{DOCS_ID}")).status == 404
    assert (await api.call("GET", f"{ENDPOINTS}/{endpoint_id(new_url)}")).status == 200
    assert list(api.fake.endpoints) == [endpoint_id(new_url)]
    assert api.fake.endpoints[endpoint_id(new_url)].secret == "s"


async def test_update_of_an_unknown_id_is_404(api: Api) -> None:
    """Updating an id that does not exist is the documented 404."""
    reply = await api.call("POST", f"{ENDPOINTS}/bm9wZQ", json={"secret": "x"})
    assert reply.status == 404
    assert reply.body["code"] == "resource_not_found"


async def test_delete_answers_an_empty_object_then_404(api: Api) -> None:
    """Delete answers 200 {} and removes the endpoint; deleting again is 404."""
    await api.create(DOCS_URL)
    first = await api.call("DELETE", f"{ENDPOINTS}/{DOCS_ID}")
    assert (first.status, first.body) == (200, {})
    assert DOCS_ID not in api.fake.endpoints
    assert (await api.call("DELETE", f"{ENDPOINTS}/{DOCS_ID}")).status == 404


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        ({"eventTypes": [NOTE]}, "required_field", "url is required"),
        ({"url": "", "eventTypes": [NOTE]}, "required_field", "url is required"),
        ({"url": "ftp://example.com/x", "eventTypes": [NOTE]}, "invalid_argument", "http or https"),
        ({"url": "example.com/hook", "eventTypes": [NOTE]}, "invalid_argument", "http or https"),
        ({"url": "https:///nohost", "eventTypes": [NOTE]}, "invalid_argument", "host"),
        ({"url": "https://example.com/a b", "eventTypes": [NOTE]}, "invalid_argument", "whitespace"),
        ({"url": 42, "eventTypes": [NOTE]}, "invalid_argument", "url must be a string"),
        ({"url": DOCS_URL, "eventTypes": "note.created"}, "invalid_argument", "must be a list"),
        ({"url": DOCS_URL, "eventTypes": ["note.created"]}, "invalid_argument", "must be an object"),
        ({"url": DOCS_URL, "eventTypes": [{}]}, "required_field", "eventTypes[0].eventName is required"),
        ({"url": DOCS_URL, "eventTypes": [{"eventName": "user.created"}]}, "invalid_argument", "unknown event"),
        (
            {"url": DOCS_URL, "eventTypes": [NOTE, {"eventName": "recording.event.custom"}]},
            "required_field",
            "eventTypes[1].subcategory is required",
        ),
        (
            {"url": DOCS_URL, "eventTypes": [{"eventName": "metric.alert", "subcategory": "bm90LWEtcmVhbC1vbmU"}]},
            "invalid_argument",
            "not a valid subcategory",
        ),
        (
            {"url": DOCS_URL, "eventTypes": [{"eventName": "note.created", "subcategory": "abc"}]},
            "invalid_argument",
            "has no subcategories",
        ),
        (
            {"url": DOCS_URL, "eventTypes": [NOTE], "event_types": [NOTE]},
            "invalid_argument",
            "both set",
        ),
        ({"url": DOCS_URL, "eventTypes": [NOTE], "secret": 7}, "invalid_argument", "secret must be a string"),
        ([DOCS_URL], "invalid_argument", "JSON object"),
    ],
)
async def test_invalid_creates_are_400_with_a_code(api: Api, payload: object, code: str, fragment: str) -> None:
    """Each validation problem is a 400 {message, code} naming the field; nothing is stored."""
    reply = await api.call("POST", ENDPOINTS, json=payload)
    assert reply.status == 400
    assert set(reply.body) == {"message", "code"}
    assert reply.body["code"] == code
    assert fragment in reply.body["message"]
    assert len(api.fake.endpoints) == 0


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    """A non-JSON body is 400 invalid_argument."""
    reply = await api.call("POST", ENDPOINTS, data=b"{not json")
    assert (reply.status, reply.body["code"]) == (400, "invalid_argument")


async def test_invalid_update_fields_are_400(api: Api) -> None:
    """Update validates like create: a non-boolean `disabled` or a bad URL is a 400."""
    await api.create(DOCS_URL)
    bad_flag = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"disabled": "yes"})
    bad_url = await api.call("POST", f"{ENDPOINTS}/{DOCS_ID}", json={"url": "mailto:x@example.com"})
    assert (bad_flag.status, bad_flag.body["code"]) == (400, "invalid_argument")
    assert (bad_url.status, bad_url.body["code"]) == (400, "invalid_argument")
    assert api.fake.endpoints[DOCS_ID].enabled is True


async def test_duplicate_event_types_are_collapsed_and_nulls_are_absent(api: Api) -> None:
    """Repeated event types are stored once; a null field counts as absent."""
    reply = await api.call("POST", ENDPOINTS, json={"url": DOCS_URL, "eventTypes": [NOTE, NOTE], "secret": None})
    assert reply.body["eventTypes"] == [NOTE]
    assert api.fake.endpoints[DOCS_ID].secret == ""


async def test_unknown_routes_are_404_json(api: Api) -> None:
    """A path (or method) outside the API answers the JSON 404, logged without an operation."""
    reply = await api.call("GET", "/webhooks/v2/nothing")
    assert (reply.status, reply.body["code"]) == (404, "resource_not_found")
    assert api.fake.requests[-1].operation is None
    put = await api.call("PUT", f"{ENDPOINTS}/{DOCS_ID}", json={"secret": "x"})
    assert (put.status, put.body["code"]) == (404, "resource_not_found")
