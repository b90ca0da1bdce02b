"""Listing endpoints, event types and subcategories: limits, tokens, robustness to changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from fullstory_async.testing import Catalogue, EventTypeDef, FakeFullstory, SubcategoryDef
from fullstory_async.testing._pagination import PaginationError, decode_token, encode_token
from fullstory_async.testing._store import EndpointStore, StoredEventType

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
EVENT_TYPES = "/webhooks/v1/event-types"


def seed(fake: FakeFullstory, count: int) -> list[str]:
    return [fake.add_endpoint(f"https://example.com/h/{i}").id for i in range(count)]


async def walk(api: Api, path: str, key: str, params: dict[str, str] | None = None) -> list[list[Any]]:
    pages: list[list[Any]] = []
    query = dict(params or {})
    for _ in range(1000):
        reply = await api.call("GET", path, params=query)
        assert reply.status == 200, reply.body
        pages.append(reply.body[key])
        token = reply.body.get("nextPaginationToken")
        if token is None:
            return pages
        assert token
        query["paginationToken"] = token
    raise AssertionError("pagination did not end")


async def test_endpoints_default_to_pages_of_100_and_the_last_page_has_no_token(api: Api) -> None:
    """250 endpoints list as 100, 100, 50 in creation order; the last page has no token."""
    ids = seed(api.fake, 250)
    pages = await walk(api, ENDPOINTS, "endpoints")
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [e["id"] for p in pages for e in p] == ids


async def test_an_exactly_full_last_page_has_no_token(api: Api) -> None:
    """With exactly `limit` endpoints left, that page carries no nextPaginationToken."""
    seed(api.fake, 4)
    reply = await api.call("GET", ENDPOINTS, params={"limit": "4"})
    assert len(reply.body["endpoints"]) == 4
    assert "nextPaginationToken" not in reply.body


async def test_an_empty_listing(api: Api) -> None:
    """No endpoints: an empty list and no token."""
    reply = await api.call("GET", ENDPOINTS)
    assert reply.body == {"endpoints": []}


@pytest.mark.parametrize("limit", ["0", "-1", "101", "ten", "1.5"])
async def test_out_of_range_or_bad_limits_are_400(api: Api, limit: str) -> None:
    """Limit outside 1..100 or not an integer is 400 invalid_argument by default."""
    reply = await api.call("GET", ENDPOINTS, params={"limit": limit})
    assert (reply.status, reply.body["code"]) == (400, "invalid_argument")


async def test_clamp_policy_clamps_limits(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """out_of_range_limit="clamp" serves 100 for 0 or 5000."""
    async with FakeFullstory(out_of_range_limit="clamp") as fake:
        seed(fake, 120)
        api = api_factory(session, fake)
        big = await api.call("GET", ENDPOINTS, params={"limit": "5000"})
        zero = await api.call("GET", ENDPOINTS, params={"limit": "0"})
    assert len(big.body["endpoints"]) == len(zero.body["endpoints"]) == 100


@pytest.mark.parametrize("token", ["!!!", "bm9wZQ", encode_token("endpoints", 1)[:-1], encode_token("other", 3)])
async def test_bad_tokens_are_400(api: Api, token: str) -> None:
    """A token the fake did not issue (or for another listing) is 400 invalid_argument."""
    seed(api.fake, 3)
    reply = await api.call("GET", ENDPOINTS, params={"paginationToken": token})
    assert (reply.status, reply.body["code"]) == (400, "invalid_argument")


async def test_snake_case_token_and_empty_token_are_accepted(api: Api) -> None:
    """pagination_token works too; an empty token means the first page."""
    ids = seed(api.fake, 3)
    first = await api.call("GET", ENDPOINTS, params={"limit": "2", "paginationToken": ""})
    second = await api.call(
        "GET", ENDPOINTS, params={"limit": "2", "pagination_token": first.body["nextPaginationToken"]}
    )
    assert [e["id"] for e in first.body["endpoints"] + second.body["endpoints"]] == ids


async def test_tokens_survive_deletes_and_creates(api: Api) -> None:
    """Deleting around a token neither skips nor repeats endpoints; new ones come at the end."""
    ids = seed(api.fake, 10)
    first = await api.call("GET", ENDPOINTS, params={"limit": "4"})
    token = first.body["nextPaginationToken"]
    for gone in (ids[3], ids[4], ids[0]):  # the token's own endpoint, the next one, an earlier one
        assert (await api.call("DELETE", f"{ENDPOINTS}/{gone}")).status == 200
    late = api.fake.add_endpoint("https://example.com/late").id
    rest = await walk(api, ENDPOINTS, "endpoints", {"limit": "4", "paginationToken": token})
    assert [e["id"] for p in rest for e in p] == [*ids[5:], late]


async def test_a_url_change_keeps_the_listing_position(api: Api) -> None:
    """An endpoint whose URL (and id) changes stays where it was in the listing."""
    ids = seed(api.fake, 3)
    moved = await api.call("POST", f"{ENDPOINTS}/{ids[1]}", json={"url": "https://example.com/moved"})
    listed = await api.call("GET", ENDPOINTS)
    assert [e["id"] for e in listed.body["endpoints"]] == [ids[0], moved.body["id"], ids[2]]


def test_store_compacts_dead_entries_and_pages_stay_correct() -> None:
    """After mass deletes the order list is rebuilt, and paging still returns every survivor."""
    store = EndpointStore()
    note = (StoredEventType("note.created"),)
    records = [store.add(f"https://example.com/{i}", note, "") for i in range(5000)]
    for record in records[:4000]:
        store.delete(record.id)
    assert len(store._order) < 5000  # compacted
    seen, after = [], 0
    for _ in range(100):
        page, next_after = store.page(after, 100)
        seen.extend(r.id for r in page)
        if next_after is None:
            break
        after = next_after
    assert seen == [r.id for r in records[4000:]]


def test_tokens_round_trip_and_reject_garbage() -> None:
    """decode_token inverts encode_token and refuses other scopes and junk."""
    assert decode_token(encode_token("endpoints", 12345), "endpoints") == 12345
    for bad in ("", "%%%", encode_token("endpoints", 1) + "!", encode_token("x:endpoints", 1)):
        with pytest.raises(PaginationError):
            decode_token(bad, "endpoints")


async def test_event_types_list_the_catalogue(api: Api) -> None:
    """Event types answer {"eventDefs": [...]} with the seeded names and hasSubcategories."""
    reply = await api.call("GET", EVENT_TYPES)
    assert reply.status == 200
    assert list(reply.body) == ["eventDefs"]
    flags = {d["eventName"]: d["hasSubcategories"] for d in reply.body["eventDefs"]}
    assert flags == {
        "note.created": False,
        "segment.created": False,
        "segment.trend.alert": True,
        "metric.alert": True,
        "nativemobile.event.crash": False,
        "recording.event.custom": True,
    }
    assert reply.body["eventDefs"][0] == {
        "eventName": "note.created",
        "displayName": "Note Created",
        "hasSubcategories": False,
    }


async def test_subcategories_of_the_default_catalogue(api: Api) -> None:
    """Subcategories answer opaque values and display names (one of them empty)."""
    reply = await api.call("GET", f"{EVENT_TYPES}/recording.event.custom/subcategories")
    defs = reply.body["subcategoryDefs"]
    assert [d["displayName"] for d in defs] == [
        "Added Item to Cart",
        "Checkout Completed",
        "Signed Up",
        "Docs example",
        "",
    ]
    assert all(set(d) == {"subcategory", "displayName"} for d in defs)
    assert [len(d["subcategory"]) for d in defs] == [32, 32, 32, 116, 32]
    assert "nextPaginationToken" not in reply.body


async def test_subcategories_paginate_by_1000(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """2,500 subcategories list as 1000, 1000, 500; limit above 1000 is 400."""
    subs = [SubcategoryDef(f"opaque-{i}", f"Event {i}") for i in range(2500)]
    catalogue = Catalogue([EventTypeDef("app.event", "App Event", subs)])
    async with FakeFullstory(catalogue=catalogue) as fake:
        api = api_factory(session, fake)
        path = f"{EVENT_TYPES}/app.event/subcategories"
        pages = await walk(api, path, "subcategoryDefs")
        small = await walk(api, path, "subcategoryDefs", {"limit": "1000"})
        too_big = await api.call("GET", path, params={"limit": "1001"})
        wrong_scope = await api.call("GET", path, params={"paginationToken": encode_token("endpoints", 1)})
    assert [len(p) for p in pages] == [1000, 1000, 500] == [len(p) for p in small]
    assert [d["subcategory"] for p in pages for d in p] == [s.subcategory for s in subs]
    assert (too_big.status, wrong_scope.status) == (400, 400)


async def test_subcategories_of_unknown_or_plain_event_types(api: Api) -> None:
    """An unknown event type is 404; one without subcategories lists none."""
    unknown = await api.call("GET", f"{EVENT_TYPES}/user.created/subcategories")
    plain = await api.call("GET", f"{EVENT_TYPES}/note.created/subcategories")
    assert (unknown.status, unknown.body["code"]) == (404, "resource_not_found")
    assert (plain.status, plain.body) == (200, {"subcategoryDefs": []})
