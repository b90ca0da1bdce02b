"""The Webhooks v1 operations against an in-memory transport: request shape, decoding, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fullstory_async import (
    APIConnectionError,
    ApiResponse,
    Client,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    InvalidArgumentError,
    NotFoundError,
    Page,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Subcategory,
    UpdateEndpointRequest,
)
from tests.fakes import StubTransport

KEY = "na1.unit-test-key/ORG"


def endpoint_json(n: int = 1, *, enabled: bool = True, snake: bool = False) -> dict[str, Any]:
    url = f"https://example.com/hooks/{n}"
    types_key, name_key = ("event_types", "event_name") if snake else ("eventTypes", "eventName")
    return {
        "id": f"id-{n}",
        "created": "2020-04-01T21:53:58.200Z",
        "modified": "2020-04-02T10:00:00.000Z",
        "enabled": enabled,
        "url": url,
        types_key: [{name_key: "note.created"}],
    }


def respond(data: object = None, status: int = 200, raw: bytes | None = None) -> ApiResponse:
    body = raw if raw is not None else json.dumps(data).encode()
    return ApiResponse(status=status, headers={"Content-Type": "application/json"}, body=body)


def client(recorder: StubTransport) -> Client:
    return Client(KEY, transport=recorder, retry=RetryPolicy(wait=False))


async def test_list_endpoints_follows_tokens_across_pages() -> None:
    """Iteration follows nextPaginationToken through an empty page to a last page without a token."""
    rec = StubTransport(
        respond({"endpoints": [endpoint_json(1), endpoint_json(2)], "nextPaginationToken": "t1"}),
        respond({"endpoints": [], "nextPaginationToken": "t2"}),
        respond({"endpoints": [endpoint_json(3)], "nextPaginationToken": "t3"}),
        respond({"endpoints": [endpoint_json(4)]}),
    )
    async with client(rec) as fs:
        ids = [ep.id async for ep in fs.webhooks.list_endpoints(page_size=2)]
    assert ids == ["id-1", "id-2", "id-3", "id-4"]
    assert [r.params for r in rec.requests] == [
        (("limit", "2"),),
        (("limit", "2"), ("paginationToken", "t1")),
        (("limit", "2"), ("paginationToken", "t2")),
        (("limit", "2"), ("paginationToken", "t3")),
    ]
    assert {(r.method, r.path) for r in rec.requests} == {("GET", "/webhooks/v1/endpoints")}


async def test_list_endpoints_fetches_lazily_one_page_at_a_time() -> None:
    """The iterator asks for the next page only when the current one is used up."""
    rec = StubTransport(
        respond({"endpoints": [endpoint_json(1)], "nextPaginationToken": "t1"}),
        respond({"endpoints": [endpoint_json(2)]}),
    )
    async with client(rec) as fs:
        iterator = fs.webhooks.list_endpoints()
        first = await anext(iterator)
        assert first.id == "id-1"
        assert len(rec.requests) == 1
        assert [ep.id async for ep in iterator] == ["id-2"]
    assert len(rec.requests) == 2


async def test_empty_string_token_ends_the_listing() -> None:
    """An empty nextPaginationToken means the last page, like an absent one."""
    rec = StubTransport(respond({"endpoints": [endpoint_json(1)], "nextPaginationToken": ""}))
    async with client(rec) as fs:
        page = await fs.webhooks.list_endpoints_page()
    assert page == Page((expected_endpoint(1),), None)


def expected_endpoint(n: int, enabled: bool = True) -> Endpoint:
    return Endpoint(
        id=f"id-{n}",
        created=datetime(2020, 4, 1, 21, 53, 58, 200000, tzinfo=UTC),
        modified=datetime(2020, 4, 2, 10, 0, tzinfo=UTC),
        enabled=enabled,
        url=f"https://example.com/hooks/{n}",
        event_types=(EventType("note.created"),),
    )


async def test_list_endpoints_page_reads_snake_case() -> None:
    """A page in snake_case decodes like camelCase, and page_token is sent as paginationToken."""
    rec = StubTransport(respond({"endpoints": [endpoint_json(1, snake=True)], "next_pagination_token": "n"}))
    async with client(rec) as fs:
        page = await fs.webhooks.list_endpoints_page(page_size=100, page_token="abc")
    assert page.items == (expected_endpoint(1),)
    assert page.next_page_token == "n"
    assert rec.requests[0].params == (("limit", "100"), ("paginationToken", "abc"))


async def test_list_endpoints_resumes_from_a_token() -> None:
    """list_endpoints(page_token=...) starts from that page."""
    rec = StubTransport(respond({"endpoints": [endpoint_json(7)]}))
    async with client(rec) as fs:
        ids = [ep.id async for ep in fs.webhooks.list_endpoints(page_token="saved")]
    assert ids == ["id-7"]
    assert rec.requests[0].params == (("paginationToken", "saved"),)


@pytest.mark.parametrize("size", [0, 101, -1, True, 2.5, "10"])
async def test_list_endpoints_rejects_bad_page_size_before_io(size: Any) -> None:
    """page_size outside 1..100 is an InvalidArgumentError at call time, with no request sent."""
    rec = StubTransport()
    async with client(rec) as fs:
        with pytest.raises(InvalidArgumentError) as info:
            fs.webhooks.list_endpoints(page_size=size)
        with pytest.raises(InvalidArgumentError):
            await fs.webhooks.list_endpoints_page(page_size=size)
    assert info.value.field == "page_size"
    assert rec.requests == []


async def test_repeated_token_stops_the_listing() -> None:
    """A server that returns the token it was sent raises instead of looping forever."""
    rec = StubTransport(
        respond({"endpoints": [], "nextPaginationToken": "same"}),
        respond({"endpoints": [], "nextPaginationToken": "same"}),
    )
    async with client(rec) as fs:
        with pytest.raises(ResponseDecodeError, match="repeats"):
            _ = [ep async for ep in fs.webhooks.list_endpoints()]
    assert len(rec.requests) == 2


async def test_get_endpoint_percent_encodes_the_id() -> None:
    """The id goes into the path as one percent-encoded segment."""
    rec = StubTransport(respond(endpoint_json(1)))
    async with client(rec) as fs:
        endpoint = await fs.webhooks.get_endpoint("a/b c?d=e")
    assert endpoint == expected_endpoint(1)
    assert (rec.requests[0].method, rec.requests[0].path) == ("GET", "/webhooks/v1/endpoints/a%2Fb%20c%3Fd%3De")
    assert rec.requests[0].body is None


async def test_get_endpoint_unknown_id_raises_not_found() -> None:
    """A 404 resource_not_found body becomes NotFoundError with its code."""
    body = {"message": "Requested resource does not exist", "code": "resource_not_found"}
    rec = StubTransport(respond(body, status=404))
    async with client(rec) as fs:
        with pytest.raises(NotFoundError) as info:
            await fs.webhooks.get_endpoint("missing")
    assert info.value.code == "resource_not_found"
    assert info.value.path == "/webhooks/v1/endpoints/missing"


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
async def test_empty_or_wrong_id_is_rejected_before_io(bad: Any) -> None:
    """get/update/delete refuse an empty or non-string id with an error naming endpoint_id."""
    rec = StubTransport()
    async with client(rec) as fs:
        for call in (
            fs.webhooks.get_endpoint(bad),
            fs.webhooks.delete_endpoint(bad),
            fs.webhooks.update_endpoint(bad, UpdateEndpointRequest(enabled=True)),
        ):
            with pytest.raises(InvalidArgumentError) as info:
                await call
            assert info.value.field == "endpoint_id"
    assert rec.requests == []


async def test_update_with_enabled_none_keeps_a_disabled_endpoint_disabled() -> None:
    """enabled=None reads the endpoint first and sends disabled=true for a disabled one."""
    rec = StubTransport(respond(endpoint_json(1, enabled=False)), respond(endpoint_json(1, enabled=False)))
    async with client(rec) as fs:
        updated = await fs.webhooks.update_endpoint("id-1", UpdateEndpointRequest(secret="rotated-secret"))
    assert [(r.method, r.path) for r in rec.requests] == [
        ("GET", "/webhooks/v1/endpoints/id-1"),
        ("POST", "/webhooks/v1/endpoints/id-1"),
    ]
    assert rec.body(1) == {"secret": "rotated-secret", "disabled": True}
    assert updated.enabled is False


async def test_update_with_explicit_enabled_sends_disabled_without_a_read() -> None:
    """enabled=True/False maps to disabled=False/True in one POST."""
    rec = StubTransport(respond(endpoint_json(1)), respond(endpoint_json(1, enabled=False)))
    async with client(rec) as fs:
        await fs.webhooks.update_endpoint("id-1", UpdateEndpointRequest(enabled=True, event_types=["note.created"]))
        await fs.webhooks.update_endpoint(expected_endpoint(1), UpdateEndpointRequest(enabled=False))
    assert [r.method for r in rec.requests] == ["POST", "POST"]
    assert rec.body(0) == {"eventTypes": [{"eventName": "note.created"}], "disabled": False}
    assert rec.body(1) == {"disabled": True}


async def test_update_url_change_returns_the_new_id() -> None:
    """A URL change answers with the endpoint under its new id, which the caller gets."""
    new = endpoint_json(2)
    rec = StubTransport(respond(new))
    async with client(rec) as fs:
        updated = await fs.webhooks.update_endpoint(
            "id-1", UpdateEndpointRequest(url="https://example.com/hooks/2", enabled=True)
        )
    assert updated.id == "id-2"
    assert rec.body(0) == {"url": "https://example.com/hooks/2", "disabled": False}


def test_update_that_changes_nothing_is_rejected() -> None:
    """An UpdateEndpointRequest with no field set is an InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="changes nothing"):
        UpdateEndpointRequest()


async def test_update_post_is_not_retried_on_server_error() -> None:
    """A 503 on update (a POST) raises at once: the change may have been applied."""
    rec = StubTransport(respond({"message": "Server error was encountered", "code": "server_error"}, status=503))
    async with client(rec) as fs:
        with pytest.raises(ServerError):
            await fs.webhooks.update_endpoint("id-1", UpdateEndpointRequest(enabled=True))
    assert len(rec.requests) == 1


async def test_get_is_retried_on_server_error() -> None:
    """GET is idempotent: a 503 is retried and the second answer returned."""
    rec = StubTransport(respond({"message": "down", "code": "server_error"}, status=503), respond(endpoint_json(1)))
    async with client(rec) as fs:
        assert (await fs.webhooks.get_endpoint("id-1")).id == "id-1"
    assert len(rec.requests) == 2


@pytest.mark.parametrize("body", [b"", b"{}"])
async def test_delete_accepts_an_empty_or_missing_body(body: bytes) -> None:
    """DELETE returns None whether the body is empty or {}."""
    rec = StubTransport(respond(raw=body))
    async with client(rec) as fs:
        assert await fs.webhooks.delete_endpoint("id-1") is None
    assert (rec.requests[0].method, rec.requests[0].path) == ("DELETE", "/webhooks/v1/endpoints/id-1")


async def test_delete_is_retried_after_a_connection_error() -> None:
    """DELETE is idempotent: a connection error is retried."""
    rec = StubTransport(APIConnectionError("reset", method="DELETE", path="/x"), respond(raw=b"{}"))
    async with client(rec) as fs:
        await fs.webhooks.delete_endpoint("id-1")
    assert len(rec.requests) == 2


async def test_create_sends_camel_case_and_operation_name() -> None:
    """create_endpoint POSTs camelCase JSON without the None fields."""
    rec = StubTransport(respond(endpoint_json(1)))
    async with client(rec) as fs:
        await fs.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/hooks/1"))
    request = rec.requests[0]
    assert (request.method, request.path, request.operation) == ("POST", "/webhooks/v1/endpoints", "create_endpoint")
    assert rec.body(0) == {"url": "https://example.com/hooks/1", "eventTypes": []}


async def test_create_rejects_a_wrong_request_type() -> None:
    """Passing a dict instead of CreateEndpointRequest names the argument."""
    rec = StubTransport()
    async with client(rec) as fs:
        with pytest.raises(InvalidArgumentError) as info:
            await fs.webhooks.create_endpoint({"url": "https://example.com"})  # type: ignore[arg-type]
    assert info.value.field == "request"


@pytest.mark.parametrize("snake", [False, True])
async def test_list_event_types_decodes_both_spellings(snake: bool) -> None:
    """Both eventDefs and event_defs decode into EventTypeDefinition records."""
    if snake:
        data = {
            "event_defs": [{"event_name": "segment.trend.alert", "display_name": "Alert", "has_subcategories": True}]
        }
    else:
        data = {"eventDefs": [{"eventName": "segment.trend.alert", "displayName": "Alert", "hasSubcategories": True}]}
    rec = StubTransport(respond(data))
    async with client(rec) as fs:
        types = await fs.webhooks.list_event_types()
    assert types == [EventTypeDefinition("segment.trend.alert", "Alert", True)]
    assert (rec.requests[0].method, rec.requests[0].path) == ("GET", "/webhooks/v1/event-types")


async def test_list_event_types_empty_response() -> None:
    """A body without eventDefs (protojson omits empty lists) is an empty list."""
    rec = StubTransport(respond({}))
    async with client(rec) as fs:
        assert await fs.webhooks.list_event_types() == []


async def test_list_event_subcategories_paginates_and_falls_back_to_value() -> None:
    """Subcategories follow tokens, encode the event name, and use the value as a missing display name."""
    rec = StubTransport(
        respond({"subcategoryDefs": [{"subcategory": "A1", "displayName": "Cart"}], "nextPaginationToken": "p2"}),
        respond({"subcategory_defs": [{"subcategory": "B2", "display_name": ""}, {"subcategory": "C3"}]}),
    )
    async with client(rec) as fs:
        subs = [s async for s in fs.webhooks.list_event_subcategories("custom event/x", page_size=1000)]
    assert subs == [Subcategory("A1", "Cart"), Subcategory("B2", "B2"), Subcategory("C3", "C3")]
    assert rec.requests[0].path == "/webhooks/v1/event-types/custom%20event%2Fx/subcategories"
    assert rec.requests[1].params == (("limit", "1000"), ("paginationToken", "p2"))


async def test_list_event_subcategories_validates_before_io() -> None:
    """An empty event name or a page size above 1000 is rejected at call time."""
    rec = StubTransport()
    async with client(rec) as fs:
        with pytest.raises(InvalidArgumentError) as info:
            fs.webhooks.list_event_subcategories("")
        assert info.value.field == "event_name"
        with pytest.raises(InvalidArgumentError) as info:
            fs.webhooks.list_event_subcategories("x", page_size=1001)
        assert info.value.field == "page_size"
    assert rec.requests == []


async def test_find_endpoint_by_url_walks_pages() -> None:
    """find_endpoint_by_url returns the match from a later page, or None when absent."""
    pages = [
        respond({"endpoints": [endpoint_json(1)], "nextPaginationToken": "t"}),
        respond({"endpoints": [endpoint_json(2)]}),
    ]
    rec = StubTransport(*pages, *pages)
    async with client(rec) as fs:
        found = await fs.webhooks.find_endpoint_by_url("https://example.com/hooks/2")
        missing = await fs.webhooks.find_endpoint_by_url("https://example.com/hooks/9")
    assert found is not None
    assert found.id == "id-2"
    assert missing is None
    assert len(rec.requests) == 4


async def test_decode_error_names_call_and_field() -> None:
    """A malformed 200 body on a GET raises ResponseDecodeError naming field and call, without asking again."""
    rec = StubTransport(*[respond({"endpoints": [{"id": 5}]})] * 4)
    async with client(rec) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            await fs.webhooks.list_endpoints_page()
    assert len(rec.requests) == 1  # deterministic: the same bytes would fail the same way
    assert info.value.field == "$.endpoints[0].id"
    assert info.value.method == "GET"
    assert "GET /webhooks/v1/endpoints" in str(info.value)


async def test_a_garbled_get_answer_is_not_asked_again() -> None:
    """One malformed 200 on an idempotent GET is a ResponseDecodeError after one request: it is deterministic."""
    rec = StubTransport(respond(raw=b"<html>proxy"), respond(endpoint_json(1)))
    async with client(rec) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            await fs.webhooks.get_endpoint("id-1")
    assert len(rec.requests) == 1
    assert info.value.attempts == 1


async def test_a_garbled_create_answer_is_not_asked_again() -> None:
    """A malformed 200 on create (a POST) raises at once: asking again could create twice."""
    rec = StubTransport(respond(raw=b"{"))
    async with client(rec) as fs:
        with pytest.raises(ResponseDecodeError):
            await fs.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/x"))
    assert len(rec.requests) == 1
