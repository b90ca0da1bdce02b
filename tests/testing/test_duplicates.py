"""The duplicate-URL policies: the behaviour the docs leave unknown, made configurable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from fullstory_async.testing import FakeFullstory, endpoint_id

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
URL = "https://example.com/hook"
OTHER = "https://example.com/other"


async def test_default_policy_rejects_a_second_create_with_400_already_exists(api: Api) -> None:
    """By default a second create with the same URL is 400 already_exists and changes nothing."""
    await api.create(URL, secret="first")
    again = await api.create(URL, [{"eventName": "segment.created"}], secret="second")
    assert again.status == 400
    assert again.body == {"message": "an endpoint with this url already exists", "code": "already_exists"}
    [only] = api.fake.endpoints_with_url(URL)
    assert only.secret == "first"
    assert api.fake.duplicate_url == "error"


async def test_url_change_onto_a_used_url_is_400_by_default(api: Api) -> None:
    """Updating an endpoint's URL to another endpoint's URL is 400 already_exists."""
    await api.create(URL)
    await api.create(OTHER)
    reply = await api.call("POST", f"{ENDPOINTS}/{endpoint_id(OTHER)}", json={"url": URL})
    assert (reply.status, reply.body["code"]) == (400, "already_exists")
    assert len(api.fake.endpoints) == 2


async def test_replace_policy_overwrites_the_endpoint(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """duplicate_url="replace": the old endpoint is replaced by the new one (same id)."""
    async with FakeFullstory(duplicate_url="replace") as fake:
        api = api_factory(session, fake)
        await api.create(URL, secret="first")
        await api.create(OTHER)
        again = await api.create(URL, [{"eventName": "segment.created"}], secret="second")
        listed = await api.call("GET", ENDPOINTS)
    assert again.status == 200
    assert again.body["eventTypes"] == [{"eventName": "segment.created"}]
    [only] = fake.endpoints_with_url(URL)
    assert (only.id, only.secret) == (endpoint_id(URL), "second")
    assert [e["url"] for e in listed.body["endpoints"]] == [OTHER, URL]


async def test_return_existing_policy_answers_the_existing_endpoint(
    session: aiohttp.ClientSession, api_factory: type[Api]
) -> None:
    """duplicate_url="return_existing": 200 with the stored endpoint, unchanged."""
    async with FakeFullstory(duplicate_url="return_existing") as fake:
        api = api_factory(session, fake)
        first = await api.create(URL, secret="first")
        again = await api.create(URL, [{"eventName": "segment.created"}], secret="second")
    assert (again.status, again.body) == (200, first.body)
    [only] = fake.endpoints_with_url(URL)
    assert only.secret == "first"


async def test_allow_policy_creates_duplicates_with_distinct_ids(
    session: aiohttp.ClientSession, api_factory: type[Api]
) -> None:
    """duplicate_url="allow": each create stores another endpoint, so tests can catch double creates."""
    async with FakeFullstory(duplicate_url="allow") as fake:
        api = api_factory(session, fake)
        replies = [await api.create(URL) for _ in range(3)]
        moved = await api.call("POST", f"{ENDPOINTS}/{replies[1].body['id']}", json={"url": URL + "/x"})
    ids = [r.body["id"] for r in replies]
    assert ids[0] == endpoint_id(URL)
    assert len(set(ids)) == 3
    assert len(fake.endpoints_with_url(URL)) == 2
    assert moved.body["id"] == endpoint_id(URL + "/x")


async def test_add_endpoint_follows_the_policy() -> None:
    """add_endpoint refuses a URL in use unless duplicates are allowed."""
    strict = FakeFullstory()
    strict.add_endpoint(URL)
    with pytest.raises(ValueError, match="already exists"):
        strict.add_endpoint(URL)
    lenient = FakeFullstory(duplicate_url="allow")
    first, second = lenient.add_endpoint(URL), lenient.add_endpoint(URL)
    assert first.id != second.id
    assert lenient.endpoints_with_url(URL) == [first, second]


def test_an_unknown_policy_is_rejected() -> None:
    """A misspelt policy fails at construction, not at the first duplicate."""
    with pytest.raises(ValueError, match="duplicate_url"):
        FakeFullstory(duplicate_url="ignore")  # type: ignore[arg-type]
