"""Bad requests: any argument gives a valid request or an `InvalidArgumentError` naming the field, before any I/O.

Hypothesis feeds arbitrary strings (lone surrogates and control characters included) and
non-strings to the request models, the client's settings and every method argument.
A value that is accepted must make a request that can be sent: its JSON encodes, its
id stays inside one path segment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    Client,
    CreateEndpointRequest,
    EventType,
    InvalidArgumentError,
    Plan,
    RateGovernor,
    RetryPolicy,
    Timeout,
    UpdateEndpointRequest,
    _converter,
)
from fullstory_async._bulk.reconcile import _sealed
from fullstory_async._exceptions import shown
from tests.fakes import StubTransport

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

API_KEY = "na1.BadRequestsKey-Xw4p/ORG2"
ENDPOINTS = "/webhooks/v1/endpoints"
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(EXAMPLES, max_examples=60)

# -- strategies -----------------------------------------------------------------------------------

with_surrogate = st.builds(lambda a, b: a + "\ud800" + b, st.text(max_size=8), st.text(max_size=8))
texts = st.text(max_size=30) | with_surrogate | st.sampled_from(["", " ", "\t", ".", "..", "a\nb", "\x7f", "ok"])
non_strings = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=8)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.builds(object)
)
anything = texts | non_strings
hosts = st.text(max_size=12) | st.sampled_from(
    ["example.com", "127.0.0.1", "localhost", "[::1]", "[::1", "h:99999", "h:-1", "u:p@h", "exa mple.com", "\ud800"]
)
url_texts = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}" if scheme is not None else host + path,
    st.sampled_from(["http", "https", "HTTPS", "ftp", "", "javascript", None]),
    hosts,
    st.text(max_size=12) | st.sampled_from(["/hook", "/a b", "/?q=1", "#frag", "/\x00"]),
)
urls = url_texts | anything
event_type_items = texts | st.builds(EventType, st.sampled_from(["note.created", "segment.created"])) | non_strings
event_type_lists = st.lists(event_type_items, max_size=3) | st.tuples(event_type_items) | anything
numbers = (
    st.integers(-5, 2_000)
    | st.integers()
    | st.sampled_from([10**400, -(10**5000), 0, 1, 100, 101, 1000, 1001])
    | st.floats()
    | st.booleans()
    | texts
    | st.none()
)
timeouts = numbers | st.builds(Timeout, st.floats(0.1, 60), st.none() | st.floats(0.1, 10))


def is_text(value: object) -> bool:
    """Apply the SDK's rule for a text field: a non-blank str, no control characters, encodable as UTF-8."""
    if not isinstance(value, str) or not value.strip():
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def names(error: BaseException, *fields: str) -> None:
    """``error`` is an InvalidArgumentError whose field is one of ``fields`` (or an item or part of one)."""
    assert isinstance(error, InvalidArgumentError), f"{type(error).__name__}: {error!r}"
    assert isinstance(error, ValueError)
    assert any(error.field == f or error.field.startswith((f"{f}[", f"{f}.")) for f in fields), error.field
    assert str(error).startswith(f"{error.field}: ")


def attempt(build: Callable[[], T]) -> T | InvalidArgumentError:
    try:
        return build()
    except Exception as exc:  # the property under test: nothing but InvalidArgumentError
        if not isinstance(exc, InvalidArgumentError):
            raise AssertionError(f"{type(exc).__name__} instead of InvalidArgumentError: {exc!r}") from exc
        return exc


def assert_sendable(request: CreateEndpointRequest | UpdateEndpointRequest) -> None:
    """Check that an accepted request encodes to UTF-8 JSON with only valid text in it."""
    if isinstance(request, CreateEndpointRequest):
        data = json.loads(_converter.encode(request))
    else:
        data = json.loads(_converter.encode_update(request, enabled=True))
    for event_type in data.get("eventTypes", []):
        assert is_text(event_type["eventName"])
        assert "subcategory" not in event_type or is_text(event_type["subcategory"])
    if "url" in data:
        parts = urlsplit(data["url"])
        assert parts.scheme.lower() in ("http", "https")
        assert parts.hostname
    if "secret" in data:
        assert is_text(data["secret"])


# -- request models --------------------------------------------------------------------------------


@EXAMPLES
@given(event_name=anything, subcategory=anything)
def test_event_type(event_name: Any, subcategory: Any) -> None:
    """EventType is built from text or refused naming event_name or subcategory."""
    result = attempt(lambda: EventType(event_name, subcategory))
    if isinstance(result, InvalidArgumentError):
        names(result, "event_name", "subcategory")
    else:
        assert is_text(result.event_name)
        assert result.subcategory is None or is_text(result.subcategory)


@EXAMPLES
@given(url=urls, event_types=event_type_lists, secret=anything)
def test_create_endpoint_request(url: Any, event_types: Any, secret: Any) -> None:
    """CreateEndpointRequest is a sendable request or refused naming url, event_types[...] or secret."""
    result = attempt(lambda: CreateEndpointRequest(url, event_types, secret))
    if isinstance(result, InvalidArgumentError):
        names(result, "url", "event_types", "secret")
        if isinstance(secret, str) and len(secret) >= 4:
            # The same call with another secret: text that holds ``secret`` there is the message's own
            # words or another argument (``"Even"`` in ``"EventType"``), not a leak.
            other = attempt(lambda: CreateEndpointRequest(url, event_types, "\x00" * len(secret)))
            if secret not in str(other):
                assert secret not in str(result)
    else:
        assert_sendable(result)


@EXAMPLES
@given(
    url=st.none() | urls,
    event_types=st.none() | event_type_lists,
    secret=st.none() | anything,
    enabled=st.none() | st.booleans() | anything,
)
def test_update_endpoint_request(url: Any, event_types: Any, secret: Any, enabled: Any) -> None:
    """UpdateEndpointRequest is a sendable change or refused naming the field (or that it changes nothing)."""
    result = attempt(lambda: UpdateEndpointRequest(url, event_types, secret, enabled))
    if isinstance(result, InvalidArgumentError):
        names(result, "url", "event_types", "secret", "enabled", "UpdateEndpointRequest")
    else:
        assert_sendable(result)
        assert result.enabled in (None, True, False)


# -- the client's settings --------------------------------------------------------------------------


@EXAMPLES
@given(
    api_key=texts | non_strings.filter(lambda v: v is not None),
    base_url=st.none() | urls,
    timeout=timeouts,
    insecure=st.booleans(),
)
def test_client_settings(api_key: Any, base_url: Any, timeout: Any, insecure: bool) -> None:
    """Client() is configured or refused naming api_key, base_url or timeout; an accepted base URL parses."""
    result = attempt(lambda: Client(api_key, base_url=base_url, timeout=timeout, allow_insecure_http=insecure))
    if isinstance(result, InvalidArgumentError):
        names(result, "api_key", "base_url", "timeout")
        shown_args = f"{shown(base_url, 10**6)} {shown(timeout, 10**6)}"  # repr of a 5,000-digit int raises
        if isinstance(api_key, str) and len(api_key) >= 4 and api_key not in shown_args:
            assert api_key not in str(result)  # (unless another argument, shown as rejected, holds the same text)
        return
    url = yarl.URL(result.base_url + ENDPOINTS)
    assert url.scheme in ("http", "https")
    assert url.host
    if url.scheme == "http" and not insecure:
        assert url.host in ("localhost", "::1") or url.host.startswith("127.")
    assert isinstance(result.timeout, Timeout)
    assert API_KEY not in repr(result)


@EXAMPLES
@given(total=numbers, connect=numbers)
def test_timeout_record(total: Any, connect: Any) -> None:
    """Timeout(total, connect) takes positive finite seconds or None, else names timeout.total/timeout.connect."""
    result = attempt(lambda: Timeout(total, connect))
    if isinstance(result, InvalidArgumentError):
        names(result, "timeout.total", "timeout.connect")
    else:
        for value in (result.total, result.connect):
            assert value is None or 0 < float(value) < float("inf")


# -- method arguments, against an in-memory API ------------------------------------------------------


def endpoint_doc(url: str = "https://example.com/hook") -> dict[str, Any]:
    return {
        "id": "ep-1",
        "created": "2020-04-01T21:53:58.200Z",
        "modified": "2020-04-01T21:53:58.200Z",
        "enabled": True,
        "url": url,
        "eventTypes": [{"eventName": "note.created"}],
    }


async def answer_anything(request: ApiRequest) -> ApiResponse:
    """Answer every well-formed call as an API would (for a `StubTransport` with no script)."""
    path = request.path
    if path.endswith("/subcategories"):
        body: object = {"subcategoryDefs": []}
    elif path == "/webhooks/v1/event-types":
        body = {"eventDefs": []}
    elif path == ENDPOINTS and request.method == "GET":
        body = {"endpoints": []}
    elif request.method == "DELETE":
        body = {}
    else:
        sent = json.loads(request.body) if request.body else {}
        body = endpoint_doc(sent.get("url", "https://example.com/hook"))
    return ApiResponse(200, {}, json.dumps(body).encode())


async def call(method: Callable[[Client], Any]) -> tuple[Any, StubTransport]:
    """Call ``method(client)`` on a fresh in-memory client; iterate an async iterator it returns."""
    api = StubTransport(answer=answer_anything)
    async with Client(API_KEY, transport=api, retry=RetryPolicy(max_attempts=1, wait=False)) as client:
        try:
            result = method(client)
            if hasattr(result, "__aiter__"):
                result = [item async for item in result]
            elif hasattr(result, "__await__"):
                result = await result
        except Exception as exc:
            if not isinstance(exc, InvalidArgumentError):
                raise AssertionError(f"{type(exc).__name__} instead of InvalidArgumentError: {exc!r}") from exc
            return exc, api
    return result, api


def refused_before_io(result: object, api: StubTransport, *fields: str) -> bool:
    """Return True if ``result`` is a refusal naming one of ``fields``, with nothing sent."""
    if isinstance(result, InvalidArgumentError):
        names(result, *fields)
        assert api.requests == [], "a refused call must not reach the transport"
        return True
    return False


@EXAMPLES
@given(endpoint_id=anything, operation=st.sampled_from(["get", "delete", "update"]), timeout=st.none() | timeouts)
def test_endpoint_ids(run: Run[Any], endpoint_id: Any, operation: str, timeout: Any) -> None:
    """An endpoint id is one percent-encoded path segment, or refused naming endpoint_id (or timeout)."""
    update = UpdateEndpointRequest(enabled=True)
    methods = {
        "get": lambda c: c.webhooks.get_endpoint(endpoint_id, timeout=timeout),
        "delete": lambda c: c.webhooks.delete_endpoint(endpoint_id, timeout=timeout),
        "update": lambda c: c.webhooks.update_endpoint(endpoint_id, update, timeout=timeout),
    }
    result, api = run(call(methods[operation]))
    if refused_before_io(result, api, "endpoint_id", "timeout"):
        return
    [request] = api.requests
    segment = request.path.removeprefix(ENDPOINTS + "/")
    assert segment == quote(endpoint_id, safe="")
    assert segment not in ("", ".", "..")
    assert not any(c in segment for c in "/?#")
    assert yarl.URL("https://api.fullstory.com" + request.path).path.startswith(ENDPOINTS + "/")


@EXAMPLES
@given(
    page_size=numbers,
    page_token=st.none() | anything,
    timeout=st.none() | timeouts,
    listing=st.sampled_from(["endpoints_page", "endpoints", "subcategories_page", "subcategories"]),
)
def test_page_arguments(run: Run[Any], page_size: Any, page_token: Any, timeout: Any, listing: str) -> None:
    """page_size (1..100 or 1..1000), page_token and timeout are checked before any I/O, naming the field."""
    kwargs = {"page_size": page_size, "page_token": page_token, "timeout": timeout}
    methods = {
        "endpoints_page": lambda c: c.webhooks.list_endpoints_page(**kwargs),
        "endpoints": lambda c: c.webhooks.list_endpoints(**kwargs),
        "subcategories_page": lambda c: c.webhooks.list_event_subcategories_page("segment.trend.alert", **kwargs),
        "subcategories": lambda c: c.webhooks.list_event_subcategories("segment.trend.alert", **kwargs),
    }
    result, api = run(call(methods[listing]))
    if refused_before_io(result, api, "page_size", "page_token", "timeout"):
        return
    maximum = 100 if listing.startswith("endpoints") else 1000
    assert page_size is None or (type(page_size) is int and 1 <= page_size <= maximum)
    params = dict(api.requests[0].params)
    assert params.get("limit") == (None if page_size is None else str(page_size))


@EXAMPLES
@given(event_name=anything)
def test_event_names_in_paths(run: Run[Any], event_name: Any) -> None:
    """An event name is one path segment of the subcategories call, or refused naming event_name."""
    result, api = run(call(lambda c: c.webhooks.list_event_subcategories_page(event_name)))
    if refused_before_io(result, api, "event_name"):
        return
    [request] = api.requests
    assert request.path == f"/webhooks/v1/event-types/{quote(event_name, safe='')}/subcategories"
    assert yarl.URL("https://api.fullstory.com" + request.path).path.endswith("/subcategories")


@FEW
@given(url=urls, timeout=st.none() | timeouts)
def test_find_endpoint_by_url(run: Run[Any], url: Any, timeout: Any) -> None:
    """find_endpoint_by_url takes an absolute http(s) URL or refuses it naming url (or timeout)."""
    result, api = run(call(lambda c: c.webhooks.find_endpoint_by_url(url, timeout=timeout)))
    if not refused_before_io(result, api, "url", "timeout"):
        assert result is None


@FEW
@given(
    request=anything | st.builds(UpdateEndpointRequest, enabled=st.booleans()),
    on_exists=anything | st.sampled_from(["skip", "update", "error"]),
    timeout=st.none() | timeouts,
    operation=st.sampled_from(["create", "ensure"]),
)
def test_create_and_ensure_arguments(run: Run[Any], request: Any, on_exists: Any, timeout: Any, operation: str) -> None:
    """create_endpoint and ensure_endpoint take a CreateEndpointRequest (and a known on_exists) or name the field."""
    methods = {
        "create": lambda c: c.webhooks.create_endpoint(request, timeout=timeout),
        "ensure": lambda c: c.webhooks.ensure_endpoint(request, on_exists=on_exists),
    }
    result, api = run(call(methods[operation]))
    assert refused_before_io(result, api, "request", "on_exists", "timeout")


@FEW
@given(
    requests=anything | st.lists(anything, max_size=3),
    concurrency=numbers,
    on_exists=anything | st.sampled_from(["skip", "update", "error"]),
)
def test_provision_arguments(run: Run[Any], requests: Any, concurrency: Any, on_exists: Any) -> None:
    """Provision checks requests, concurrency and on_exists when called; a bad item fails alone, naming its index."""
    result, api = run(call(lambda c: c.webhooks.provision(requests, concurrency=concurrency, on_exists=on_exists)))
    if refused_before_io(result, api, "requests", "concurrency", "on_exists"):
        return
    for item in result:
        assert item.error is not None
        names(item.error, f"requests[{item.index}]")


@FEW
@given(plan=anything | st.just(_sealed(Plan())), concurrency=numbers)
def test_apply_arguments(run: Run[Any], plan: Any, concurrency: Any) -> None:
    """Apply takes a Plan and a concurrency of 1..1000, or names the field."""
    result, api = run(call(lambda c: c.webhooks.apply(plan, concurrency=concurrency)))
    if not refused_before_io(result, api, "plan", "concurrency"):
        assert result == []


@pytest.mark.parametrize("endpoint_id", [".", ".."])
async def test_dot_segments_never_reach_the_parent_path(endpoint_id: str) -> None:
    """An id of '.' or '..' is refused: URL normalisation would turn DELETE /endpoints/.. into DELETE /webhooks/v1/."""
    api = StubTransport(answer=answer_anything)
    async with Client(API_KEY, transport=api) as client:
        with pytest.raises(InvalidArgumentError, match="endpoint_id: must not be") as info:
            await client.webhooks.delete_endpoint(endpoint_id)
        with pytest.raises(InvalidArgumentError, match="event_name: must not be"):
            await client.webhooks.list_event_subcategories_page(endpoint_id)
    assert info.value.field == "endpoint_id"
    assert api.requests == []


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**5000), float("inf"), float("nan"), -1, 0, True],
    ids=["1e400-int", "5000-digit-negative", "inf", "nan", "-1", "0", "True"],
)
def test_out_of_range_numbers_are_refused_with_a_short_message(value: Any) -> None:
    """Timeouts too large for a float, infinite, NaN or not positive are refused; the message stays short."""
    with pytest.raises(InvalidArgumentError) as info:
        Timeout(total=value)
    assert info.value.field == "timeout.total"
    assert len(str(info.value)) < 200
    with pytest.raises(InvalidArgumentError) as info:
        Client(API_KEY, timeout=value)
    assert info.value.field == "timeout"


def test_lone_surrogates_are_refused_where_they_could_never_be_sent() -> None:
    """A lone surrogate in a URL, event name, subcategory or secret is refused when the request is built."""
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: CreateEndpointRequest(url="https://example.com/\ud800"), "url"),
        (lambda: CreateEndpointRequest(url="https://example.com/a", event_types=["note\udfff"]), "event_types[0]"),
        (lambda: EventType("note.created", "sub\ud83d"), "subcategory"),
        (lambda: CreateEndpointRequest(url="https://example.com/a", secret="s3cret\ud800"), "secret"),
        (lambda: Client(API_KEY, base_url="https://\ud800.example.com"), "base_url"),
    ]
    for build, field in cases:
        with pytest.raises(InvalidArgumentError) as info:
            build()
        assert info.value.field.startswith(field)
        assert "s3cret" not in str(info.value)


def test_rate_governor_settings_are_refused_with_a_short_message() -> None:
    """A 5,000-digit rate is refused as an InvalidArgumentError (its repr alone would raise ValueError)."""
    with pytest.raises(InvalidArgumentError, match="got <int>") as info:
        RateGovernor(min_rate=-(10**5000))
    assert info.value.field == "min_rate"


def test_retry_policy_numbers_are_refused_with_a_short_message() -> None:
    """RetryPolicy refuses a 5,000-digit attempt count or operation_timeout as an InvalidArgumentError."""
    for field in ("max_attempts", "operation_timeout", "backoff_max"):
        with pytest.raises(InvalidArgumentError) as info:
            RetryPolicy(**{field: -(10**5000)})
        assert info.value.field == f"RetryPolicy.{field}"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_connections", -1), ("max_connections", "10"), ("max_connections_per_host", 1.5), ("max_response_bytes", 0)],
)
def test_client_pool_and_size_settings_are_checked_when_built(setting: str, value: object) -> None:
    """A negative or non-integer pool size or body cap is refused when the client is built, naming the setting."""
    with pytest.raises(InvalidArgumentError) as info:
        Client(API_KEY, **{setting: value})
    assert info.value.field == setting
