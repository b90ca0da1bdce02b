"""Hostile responses: whatever a server sends, a call ends in a valid record or a typed `FullstoryError`.

Property tests drive every response model and list envelope through the public `Webhooks`
methods on an in-memory transport, and every status through the error decoder, with
arbitrary JSON, wrong types, missing fields, non-UTF-8 bytes, truncated, huge and deeply
nested bodies. A real 127.0.0.1 server checks that an oversized body is refused early.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    APIStatusError,
    Client,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    FullstoryError,
    Page,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    Subcategory,
    UpdateEndpointRequest,
    _converter,
)
from fullstory_async._converter import EndpointList, EventTypeList, SubcategoryList
from fullstory_async._error_decoder import error_class, error_from_response
from tests.fakes import StubTransport

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

API_KEY = "na1.HostileResponsesKey-q8Zt/ORG1"
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_OPERATION = settings(EXAMPLES, max_examples=40)
PER_MODEL = settings(EXAMPLES, max_examples=30)

# -- strategies --------------------------------------------------------------------------------

FIELD_NAMES = [
    "id", "created", "modified", "enabled", "url", "eventTypes", "event_types", "eventName", "event_name",
    "subcategory", "displayName", "display_name", "hasSubcategories", "has_subcategories", "endpoints",
    "eventDefs", "event_defs", "subcategoryDefs", "subcategory_defs", "nextPaginationToken",
    "next_pagination_token", "code", "message",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "2020-04-01T21:53:58.200Z", "note.created", "0", "true", "null"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=10)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=12
)

timestamps = st.builds(
    lambda when, fraction, zone: when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["", ".2", ".200", ".200123", ".200123456", "."]),
    st.sampled_from(["Z", "z", "+00:00", "-07:30", "+14:00", "-23:59", "", "+25:00", " UTC"]),
)
event_type_json = st.fixed_dictionaries(
    {"eventName": st.text(max_size=20)}, optional={"subcategory": st.text(max_size=20)}
)
endpoint_json = st.fixed_dictionaries(
    {"id": st.text(max_size=20), "created": timestamps, "modified": timestamps, "url": st.text(max_size=40)},
    optional={"enabled": st.booleans(), "eventTypes": st.lists(event_type_json, max_size=3)},
)
event_def_json = st.fixed_dictionaries(
    {"eventName": st.text(max_size=20)},
    optional={"displayName": st.text(max_size=20), "hasSubcategories": st.booleans()},
)
subcategory_json = st.fixed_dictionaries(
    {"subcategory": st.text(max_size=20)}, optional={"displayName": st.text(max_size=20)}
)
tokens = st.none() | st.text(max_size=10)


def envelope(name: str, items: st.SearchStrategy[Any], *, paged: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {name: st.lists(items, max_size=3)}
    if paged:
        optional["nextPaginationToken"] = tokens
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def damaged(draw: st.DrawFn, document: object) -> object:
    """Mutate a well-formed document: drop a key, swap a value for any JSON, or rename a key to snake_case."""
    if isinstance(document, list) and document and draw(st.booleans()):
        index = draw(st.integers(0, len(document) - 1))
        document = [*document]
        document[index] = draw(damaged(document[index]))
        return document
    if not isinstance(document, dict) or not document or draw(st.integers(0, 3)) == 0:
        return document
    document = dict(document)
    key = draw(st.sampled_from(sorted(document)))
    action = draw(st.sampled_from(["drop", "replace", "snake", "recurse"]))
    if action == "drop":
        del document[key]
    elif action == "replace":
        document[key] = draw(json_values)
    elif action == "snake":
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        document[snake] = document.pop(key)
    else:
        document[key] = draw(damaged(document[key]))
    return document


@st.composite
def bodies(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """Serialise a (possibly damaged) document, then maybe damage the bytes: truncate, garble, re-encode."""
    document = draw(documents.flatmap(damaged) | json_values)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8
    damage = draw(st.sampled_from(["none", "none", "truncate", "garble", "utf16", "latin1", "bom", "nested"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif damage == "garble":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    elif damage == "utf16":
        raw = text.encode("utf-16", "surrogatepass")
    elif damage == "latin1":
        raw = text.encode("latin-1", "replace")
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif damage == "nested":
        depth = draw(st.sampled_from([10, 900, 100_000]))
        raw = b'{"endpoints": ' + b"[" * depth + b"]" * depth + b"}"
    return raw


def statuses() -> st.SearchStrategy[int]:
    return st.sampled_from([200, 200, 200, 201, 204]) | st.integers(100, 599)


# -- what a valid record looks like ---------------------------------------------------------------


def assert_utc(value: object) -> None:
    assert isinstance(value, datetime)
    assert value.utcoffset() == timedelta(0)


def assert_event_type(value: object) -> None:
    assert type(value) is EventType
    assert isinstance(value.event_name, str)
    assert value.event_name.strip()
    assert value.subcategory is None or (isinstance(value.subcategory, str) and value.subcategory.strip())


def assert_endpoint(value: object) -> None:
    assert type(value) is Endpoint
    assert isinstance(value.id, str)
    assert isinstance(value.url, str)
    assert_utc(value.created)
    assert_utc(value.modified)
    assert type(value.enabled) is bool
    assert type(value.event_types) is tuple
    for event_type in value.event_types:
        assert_event_type(event_type)


def assert_event_def(value: object) -> None:
    assert type(value) is EventTypeDefinition
    assert isinstance(value.event_name, str)
    assert isinstance(value.display_name, str)
    assert type(value.has_subcategories) is bool


def assert_subcategory(value: object) -> None:
    assert type(value) is Subcategory
    assert isinstance(value.subcategory, str)
    assert isinstance(value.display_name, str)


def assert_page(value: object, item: Callable[[object], None]) -> None:
    assert type(value) is Page
    assert type(value.items) is tuple
    for each in value.items:
        item(each)
    assert value.next_page_token is None or (isinstance(value.next_page_token, str) and value.next_page_token)


def each(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_all(items: Any) -> None:
        for item in items:
            check(item)

    return check_all


def assert_typed(error: BaseException) -> None:
    """Check for a typed error whose text can be shown (str and repr never raise)."""
    assert isinstance(error, FullstoryError), f"untyped {type(error).__name__}: {error!r}"
    assert isinstance(str(error), str)
    assert isinstance(repr(error), str)
    if isinstance(error, ResponseDecodeError):
        assert error.field.startswith("$")
        assert isinstance(error.reason, str)
        assert error.reason


# -- the calls ---------------------------------------------------------------------------------------


async def empty_last_page(request: ApiRequest) -> ApiResponse:
    """Answer any follow-up of a hostile response (a listing's next page) with an empty last page."""
    return ApiResponse(200, {}, b"{}")


def client_for(stub: StubTransport) -> Client:
    return Client(API_KEY, transport=stub, retry=RetryPolicy(max_attempts=1, wait=False), rate_governor=False)


async def collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


CREATE = CreateEndpointRequest(url="https://example.com/hook", event_types=["note.created"])
UPDATE = UpdateEndpointRequest(event_types=["note.created"], enabled=True)

Call = Callable[[Client], Awaitable[Any]]
CALLS: dict[str, tuple[Call, Callable[[Any], object]]] = {
    "create_endpoint": (lambda c: c.webhooks.create_endpoint(CREATE), assert_endpoint),
    "get_endpoint": (lambda c: c.webhooks.get_endpoint("ep-1"), assert_endpoint),
    "update_endpoint": (lambda c: c.webhooks.update_endpoint("ep-1", UPDATE), assert_endpoint),
    "list_endpoints_page": (
        lambda c: c.webhooks.list_endpoints_page(),
        lambda page: assert_page(page, assert_endpoint),
    ),
    "list_endpoints": (
        lambda c: collect(c.webhooks.list_endpoints()),
        each(assert_endpoint),
    ),
    "find_endpoint_by_url": (
        lambda c: c.webhooks.find_endpoint_by_url("https://example.com/hook"),
        lambda found: None if found is None else assert_endpoint(found),
    ),
    "list_event_types": (
        lambda c: c.webhooks.list_event_types(),
        each(assert_event_def),
    ),
    "list_event_subcategories_page": (
        lambda c: c.webhooks.list_event_subcategories_page("segment.trend.alert"),
        lambda page: assert_page(page, assert_subcategory),
    ),
    "list_event_subcategories": (
        lambda c: collect(c.webhooks.list_event_subcategories("segment.trend.alert")),
        each(assert_subcategory),
    ),
    "delete_endpoint": (lambda c: c.webhooks.delete_endpoint("ep-1"), lambda result: None),
}

DOCUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "create_endpoint": endpoint_json,
    "get_endpoint": endpoint_json,
    "update_endpoint": endpoint_json,
    "list_endpoints_page": envelope("endpoints", endpoint_json, paged=True),
    "list_endpoints": envelope("endpoints", endpoint_json, paged=True),
    "find_endpoint_by_url": envelope("endpoints", endpoint_json, paged=True),
    "list_event_types": envelope("eventDefs", event_def_json, paged=False),
    "list_event_subcategories_page": envelope("subcategoryDefs", subcategory_json, paged=True),
    "list_event_subcategories": envelope("subcategoryDefs", subcategory_json, paged=True),
    "delete_endpoint": json_values,
}


async def outcome(operation: str, status: int, body: bytes) -> tuple[str, Any]:
    """Run one operation against the scripted response; return ("ok", result) or ("error", exception)."""
    call, _ = CALLS[operation]
    async with client_for(StubTransport(ApiResponse(status, {}, body), answer=empty_last_page)) as client:
        try:
            return "ok", await call(client)
        except Exception as exc:  # the property under test: only FullstoryError may come out
            return "error", exc


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_every_operation_survives_hostile_bodies(run: Run[Any], operation: str) -> None:
    """Each public operation ends in a valid record or a typed error for any status and damaged body."""

    @PER_OPERATION
    @given(status=statuses(), body=bodies(DOCUMENTS[operation]))
    def check(status: int, body: bytes) -> None:
        kind, result = run(outcome(operation, status, body))
        if kind == "error":
            assert_typed(result)
            if 200 <= status < 300:
                assert isinstance(result, ResponseDecodeError)
            else:
                assert isinstance(result, APIStatusError)
                assert result.status == status
        else:
            assert 200 <= status < 300
            CALLS[operation][1](result)

    check()


@pytest.mark.parametrize("operation", sorted(set(CALLS) - {"delete_endpoint"}))
def test_well_formed_bodies_decode(run: Run[Any], operation: str) -> None:
    """Undamaged documents of the right shape decode, unless a field is out of range (then a typed error)."""

    @settings(max_examples=25, deadline=None)
    @given(document=DOCUMENTS[operation])
    def check(document: object) -> None:
        kind, result = run(outcome(operation, 200, json.dumps(document).encode("utf-8", "surrogatepass")))
        if kind == "ok":
            CALLS[operation][1](result)
        else:
            assert isinstance(result, ResponseDecodeError), repr(result)

    check()


WIRE_MODELS: dict[type[Any], st.SearchStrategy[Any]] = {
    Endpoint: endpoint_json,
    EventType: event_type_json,
    EventTypeDefinition: event_def_json,
    Subcategory: subcategory_json,
    EndpointList: envelope("endpoints", endpoint_json, paged=True),
    EventTypeList: envelope("eventDefs", event_def_json, paged=False),
    SubcategoryList: envelope("subcategoryDefs", subcategory_json, paged=True),
}


@pytest.mark.parametrize("model", list(WIRE_MODELS), ids=lambda model: model.__name__)
def test_the_converter_decodes_or_names_the_field(model: type[Any]) -> None:
    """Every wire model decodes to an instance or raises ResponseDecodeError naming a field path."""

    @PER_MODEL
    @given(body=bodies(WIRE_MODELS[model]))
    def check(body: bytes) -> None:
        try:
            record = _converter.decode(body, model)
        except ResponseDecodeError as exc:
            assert_typed(exc)
        else:
            assert type(record) is model

    check()


# -- the error decoder ---------------------------------------------------------------------------

header_values = st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF, exclude_categories=["Cs"]), max_size=40)
RETRY_AFTERS = ["1", "0.5", "-3", "1e400", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"]
error_headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": header_values | st.sampled_from(RETRY_AFTERS),
        "Location": header_values | st.just("https://elsewhere.example.com/webhooks/v1/endpoints"),
        "X-Request-Id": header_values,
        "Content-Type": st.sampled_from(["application/json", "text/html", "text/plain"]),
    },
)  # fmt: skip
error_documents = st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values}) | st.sampled_from(
    [{"code": "required_field", "message": "uid is required"}, {"message": "x" * 5000, "code": "c" * 5000}]
)
error_bodies = (
    bodies(error_documents)
    | st.binary(max_size=300)
    | st.sampled_from([b"", b"<html><title>502 Bad Gateway</title></html>", b"<title>" + b"t" * 10_000])
)


@EXAMPLES
@given(status=st.integers(100, 599), body=error_bodies, headers=error_headers)
def test_error_decoder_types_every_status(status: int, body: bytes, headers: dict[str, str]) -> None:
    """Any status 100..599 with any body and headers becomes its typed APIStatusError, readable and bounded."""
    error = error_from_response(ApiRequest("POST", "/webhooks/v1/endpoints"), ApiResponse(status, headers, body))
    assert type(error) is error_class(status)
    assert_typed(error)
    assert error.status == status
    assert error.body == body
    assert isinstance(error.message, str)
    assert error.message
    assert len(error.message) <= 1003
    assert error.code is None or (isinstance(error.code, str) and len(error.code) <= 203)
    if 300 <= status < 400 and "Location" in headers:
        assert headers["Location"] in error.message
    if isinstance(error, RateLimitError):
        assert error.retry_after is None or (math.isfinite(error.retry_after) and error.retry_after >= 0)


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("status", [400, 429, 500, 502])
def test_error_decoder_survives_deep_nesting(status: int, depth: int) -> None:
    """An error body nested deeper than the JSON parser allows is shown as an excerpt, not a RecursionError."""
    body = b'{"message": ' * depth + b"1" + b"}" * depth
    error = error_from_response(ApiRequest("GET", "/webhooks/v1/endpoints"), ApiResponse(status, {}, body))
    assert type(error) is error_class(status)
    assert error.message.startswith('{"message": {"message":')


# -- explicit hostile cases ---------------------------------------------------------------------------

NESTED = [
    b"[" * 200_000,
    b'{"a":' * 200_000,
    b'{"endpoints": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    b'{"id": "a", "created": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
]


@pytest.mark.parametrize("body", NESTED, ids=["array", "object", "in-envelope", "in-field"])
@pytest.mark.parametrize("operation", ["get_endpoint", "list_endpoints_page", "list_event_types"])
async def test_deeply_nested_json_is_a_decode_error(operation: str, body: bytes) -> None:
    """JSON nested far deeper than the parser's recursion limit is a ResponseDecodeError, never RecursionError."""
    kind, result = await outcome(operation, 200, body)
    assert kind == "error"
    assert isinstance(result, ResponseDecodeError)


def endpoint_doc(n: int, **changes: object) -> dict[str, Any]:
    doc = {
        "id": f"ep-{n}",
        "created": "2020-04-01T21:53:58.200Z",
        "modified": "2020-04-01T21:53:58.200123456Z",
        "enabled": True,
        "url": f"https://example.com/hooks/{n}",
        "eventTypes": [{"eventName": "note.created"}],
    }
    doc.update(changes)
    return doc


async def test_huge_valid_bodies_decode() -> None:
    """A 4 MB field and a page of 5,000 endpoints still decode to valid records."""
    big_url = "https://example.com/" + "a" * 4_000_000
    kind, endpoint = await outcome("get_endpoint", 200, json.dumps(endpoint_doc(1, url=big_url)).encode())
    assert kind == "ok"
    assert_endpoint(endpoint)
    assert endpoint.url == big_url

    page_body = json.dumps({"endpoints": [endpoint_doc(n) for n in range(5_000)], "nextPaginationToken": "t"})
    kind, page = await outcome("list_endpoints_page", 200, page_body.encode())
    assert kind == "ok"
    assert_page(page, assert_endpoint)
    assert len(page.items) == 5_000


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 4_000_000,
        b'{"id": "' + b"\xff" * 1_000_000 + b'"}',
        b'{"endpoints": [' + b'{"id": 1},' * 2_000 + b"{}]}",
        b'{"id": ' + b"9" * 5_000 + b"}",
        b'{"enabled": 1e999, "created": -1e999, "endpoints": 1e999}',
    ],
    ids=["4MB-garbage", "1MB-not-utf8", "2000-wrong-items", "5000-digit-int", "infinities"],
)
async def test_huge_hostile_bodies_are_decode_response(body: bytes) -> None:
    """Megabytes of garbage, invalid UTF-8, wrong items or oversized numbers end in a ResponseDecodeError."""
    for operation in ("get_endpoint", "list_endpoints_page"):
        kind, result = await outcome(operation, 200, body)
        assert kind == "error"
        assert isinstance(result, ResponseDecodeError)
        assert len(str(result)) < 1_000


def _failures(exc: BaseException) -> int:
    """Count the failures an error was built from (the leaves of cattrs' exception groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return sum(_failures(inner) for inner in exc.exceptions)
    return 1


async def test_a_page_of_bad_items_costs_no_more_than_its_first_error() -> None:
    """A page of 5,000 wrong items is refused at the first one: a hostile page must not stall the loop.

    Counted, not timed: the error is built from the failures of one item, as for a page of that one
    item (cattrs' own tuple hook builds them for all 5,001 items, ~80 us each).
    """
    errors = []
    for items in (1, 5_000):
        body = b'{"endpoints": [' + b'{"id": 1},' * items + b"{}]}"
        kind, result = await outcome("list_endpoints_page", 200, body)
        assert kind == "error"
        assert isinstance(result, ResponseDecodeError)
        assert result.field == "$.endpoints[0].id"
        assert result.__cause__ is not None
        errors.append(_failures(result.__cause__))
    assert errors[1] == errors[0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"created": "9999-12-31T23:59:59-23:59"}, "$.created"),
        ({"modified": "0001-01-01T00:00:00+23:59"}, "$.modified"),
        ({"created": "2020-13-01T00:00:00Z"}, "$.created"),
        ({"eventTypes": [{"eventName": ""}]}, "$.event_types[0]"),
        ({"eventTypes": [{"eventName": "a\nb"}]}, "$.event_types[0]"),
        ({"eventTypes": "note.created"}, "$.event_types"),
        ({"eventTypes": 7}, "$.event_types"),
        ({"enabled": "true"}, "$.enabled"),
        ({"enabled": 1}, "$.enabled"),
        ({"id": None}, "$.id"),
        ({"url": ["https://example.com"]}, "$.url"),
    ],
)
async def test_out_of_range_and_wrong_typed_fields_name_the_field(changes: dict[str, object], field: str) -> None:
    """Timestamps that overflow, bad event names and wrong types are a ResponseDecodeError naming the field."""
    kind, result = await outcome("get_endpoint", 200, json.dumps(endpoint_doc(1, **changes)).encode())
    assert kind == "error"
    assert isinstance(result, ResponseDecodeError)
    assert result.field.startswith(field), (result.field, result.reason)


# -- bodies larger than max_response_bytes ------------------------------------------------------------

CHUNK = 64 * 1024
TOTAL = 64 * 1024 * 1024
CAP = 256 * 1024


class Firehose:
    """A handler that streams up to 64 MiB, counting what it managed to send before the client left."""

    def __init__(self, *, chunked: bool) -> None:
        self.chunked = chunked
        self.sent = 0
        self.disconnected = False
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = TOTAL
        await response.prepare(request)
        chunk = b" " * CHUNK
        try:
            while self.sent < TOTAL:
                await response.write(chunk)
                self.sent += CHUNK
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            self.disconnected = True
        finally:
            self.done.set()
        return response


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_oversized_body_is_refused_without_reading_it_whole(serve, chunked: bool) -> None:
    """A 64 MiB body against a 256 KiB cap: ResponseDecodeError, the connection dropped, most bytes never sent.

    The client has one connection: the listing after the refusal is only sent if it came back.
    """
    firehose = Firehose(chunked=chunked)

    async def empty_listing(_request: web.Request) -> web.Response:
        return web.json_response({"endpoints": []})

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints/{id}", firehose.handle)
    app.router.add_get("/webhooks/v1/endpoints", empty_listing)
    base = await serve(app)
    async with Client(
        API_KEY, base_url=base, max_response_bytes=CAP, retry=RetryPolicy(max_attempts=1), max_connections=1
    ) as client:
        with pytest.raises(ResponseDecodeError, match=r"exceeds max_response_bytes \(262144\)"):
            await client.webhooks.get_endpoint("ep-1")
        async with asyncio.timeout(10):
            assert (await client.webhooks.list_endpoints_page()).items == ()
        await asyncio.wait_for(firehose.done.wait(), 10)
    assert firehose.disconnected
    assert firehose.sent < TOTAL // 8, f"server sent {firehose.sent} bytes of {TOTAL}"
