"""The middleware chain and the records that travel through it."""

from __future__ import annotations

import attrs
import pytest

from fullstory_async import ApiRequest, ApiResponse, Handler, Timeout
from fullstory_async._pipeline import compose

REQUEST = ApiRequest("GET", "/webhooks/v1/endpoints")


async def ok_handler(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {"x-path": request.path}, b"{}")


async def test_compose_without_middleware_calls_the_handler() -> None:
    """An empty middleware list leaves the handler as the whole chain."""
    chain = compose([], ok_handler)
    response = await chain(REQUEST)
    assert response.status == 200
    assert response.headers["x-path"] == "/webhooks/v1/endpoints"


async def test_first_middleware_is_outermost() -> None:
    """The first middleware sees the request first and the response last."""
    events: list[str] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def mw(request: ApiRequest, call_next: Handler) -> ApiResponse:
            events.append(f"{name} in")
            response = await call_next(request)
            events.append(f"{name} out")
            return response

        return mw

    async def handler(request: ApiRequest) -> ApiResponse:
        events.append("handler")
        return ApiResponse(204)

    await compose([recorder("a"), recorder("b"), recorder("c")], handler)(REQUEST)
    assert events == ["a in", "b in", "c in", "handler", "c out", "b out", "a out"]


async def test_middleware_changes_reach_the_inner_handler() -> None:
    """A header added by a middleware is seen by everything inside it."""
    seen: list[ApiRequest] = []

    async def add_header(request: ApiRequest, call_next: Handler) -> ApiResponse:
        return await call_next(request.with_header("X-Trace", "t-1"))

    async def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return ApiResponse(200)

    await compose([add_header], handler)(REQUEST)
    assert seen[0].headers == {"X-Trace": "t-1"}
    assert REQUEST.headers == {}


async def test_middleware_may_replace_the_response() -> None:
    """A middleware can return a different response than the one it got."""

    async def rewrite(request: ApiRequest, call_next: Handler) -> ApiResponse:
        response = await call_next(request)
        return attrs.evolve(response, status=299)

    assert (await compose([rewrite], ok_handler)(REQUEST)).status == 299


async def test_middleware_may_short_circuit() -> None:
    """A middleware that does not call call_next keeps the handler from running."""

    async def cached(request: ApiRequest, call_next: Handler) -> ApiResponse:
        return ApiResponse(200, body=b"cached")

    async def handler(request: ApiRequest) -> ApiResponse:
        raise AssertionError("must not be called")

    assert (await compose([cached], handler)(REQUEST)).body == b"cached"


async def test_middleware_may_call_next_repeatedly() -> None:
    """A middleware can call the rest of the chain more than once (as retry does)."""
    calls = 0

    async def twice(request: ApiRequest, call_next: Handler) -> ApiResponse:
        await call_next(request)
        return await call_next(request)

    async def handler(request: ApiRequest) -> ApiResponse:
        nonlocal calls
        calls += 1
        return ApiResponse(200)

    await compose([twice], handler)(REQUEST)
    assert calls == 2


async def test_exceptions_propagate_through_middleware() -> None:
    """An exception from the handler reaches the caller through every middleware."""
    seen: list[BaseException] = []

    async def observe(request: ApiRequest, call_next: Handler) -> ApiResponse:
        try:
            return await call_next(request)
        except LookupError as exc:
            seen.append(exc)
            raise

    async def handler(request: ApiRequest) -> ApiResponse:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        await compose([observe], handler)(REQUEST)
    assert len(seen) == 1


def test_with_header_replaces_case_insensitively() -> None:
    """with_header replaces a header of the same name in any case and leaves the original alone."""
    request = ApiRequest("GET", "/", headers={"authorization": "old", "Accept": "text/plain"})
    changed = request.with_header("Authorization", "new")
    assert changed.headers == {"Accept": "text/plain", "Authorization": "new"}
    assert request.headers == {"authorization": "old", "Accept": "text/plain"}


@pytest.mark.parametrize(
    ("method", "idempotent", "expected"),
    [
        ("GET", None, True),
        ("DELETE", None, True),
        ("PUT", None, True),
        ("POST", None, False),
        ("PATCH", None, False),
        ("POST", True, True),
        ("GET", False, False),
    ],
)
def test_is_idempotent(method: str, idempotent: bool | None, expected: bool) -> None:
    """Idempotency comes from the method unless the request says otherwise."""
    assert ApiRequest(method, "/", idempotent=idempotent).is_idempotent is expected


def test_request_repr_redacts_authorization_and_body() -> None:
    """repr(ApiRequest) hides credentials headers and the body."""
    request = ApiRequest(
        "POST",
        "/webhooks/v1/endpoints",
        headers={"Authorization": "Basic na1.k3y/ORG", "Cookie": "c=1", "Accept": "application/json"},
        body=b'{"secret":"s3cr3t"}',
        timeout=Timeout(total=1),
    )
    text = repr(request)
    assert "na1.k3y" not in text
    assert "c=1" not in text
    assert "s3cr3t" not in text
    assert "<redacted>" in text
    assert "<19 bytes>" in text
    assert "application/json" in text


def test_response_headers_are_lower_case_and_read_only() -> None:
    """Response header names are lower-cased and the mapping cannot be changed."""
    response = ApiResponse(200, {"Content-Type": "application/json", "X-Request-Id": "r-1"})
    assert dict(response.headers) == {"content-type": "application/json", "x-request-id": "r-1"}
    with pytest.raises(TypeError):
        response.headers["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-Id": "r-1"}, "r-1"),
        ({"x-fullstory-request-id": "fs-2"}, "fs-2"),
        ({"Request-Id": "r-3"}, "r-3"),
        ({"X-Request-Id": "", "Request-Id": "r-4"}, "r-4"),
        ({}, None),
    ],
)
def test_response_request_id(headers: dict[str, str], expected: str | None) -> None:
    """The request id is read from the first non-empty request id header."""
    assert ApiResponse(200, headers).request_id == expected


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (204, True), (299, True), (199, False), (301, False), (404, False)]
)
def test_response_is_success(status: int, ok: bool) -> None:
    """Only 2xx statuses count as success."""
    assert ApiResponse(status).is_success is ok
