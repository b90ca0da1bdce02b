"""Error decoding: each status to its class, the documented bodies, odd bodies, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fullstory_async import (
    APIError,
    ApiRequest,
    ApiResponse,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CreateEndpointRequest,
    FullstoryError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from fullstory_async._error_decoder import decode_response, error_class, error_from_response, parse_retry_after

CREATE = ApiRequest("POST", "/webhooks/v1/endpoints", body=b"{}")

# The six error responses of the Create Endpoint page (reference/000_391a3d7169c7600a.txt), byte for byte.
SEED_ERRORS = [
    (
        400,
        b'{\n"message": "uid is required",\n"code": "required_field"\n}',
        BadRequestError,
        "required_field",
        "uid is required",
    ),
    (
        401,
        b'{\n"message": "access is unauthorized",\n"code": "unauthorized"\n}',
        AuthenticationError,
        "unauthorized",
        "access is unauthorized",
    ),
    (
        403,
        b'{\n"message": "insufficient permissions",\n"code": "forbidden"\n}',
        PermissionDeniedError,
        "forbidden",
        "insufficient permissions",
    ),
    (
        404,
        b'{\n"message": "Requested resource does not exist",\n"code": "resource_not_found"\n}',
        NotFoundError,
        "resource_not_found",
        "Requested resource does not exist",
    ),
    (
        429,
        b'{\n"message": "Too many requests. Client has exceeded the rate limit for this endpoint.",\n'
        b'"code": "too_many_requests"\n}',
        RateLimitError,
        "too_many_requests",
        "Too many requests. Client has exceeded the rate limit for this endpoint.",
    ),
    (
        500,
        b'{\n"message": "Server error was encountered",\n"code": "server_error"\n}',
        ServerError,
        "server_error",
        "Server error was encountered",
    ),
]
SEED_IDS = [str(case[0]) for case in SEED_ERRORS]
HEADERS = {"Content-Type": "application/json", "X-Request-Id": "req-123"}


@pytest.mark.parametrize(("status", "body", "cls", "code", "message"), SEED_ERRORS, ids=SEED_IDS)
def test_documented_error_maps_to_its_class(
    status: int, body: bytes, cls: type[APIStatusError], code: str, message: str
) -> None:
    """Each documented error body becomes its class with status, code, message, headers, body and request id."""
    error = error_from_response(CREATE, ApiResponse(status, HEADERS, body))
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert isinstance(error, APIError)
    assert isinstance(error, FullstoryError)
    assert (error.status, error.code, error.message) == (status, code, message)
    assert dict(error.headers) == {"content-type": "application/json", "x-request-id": "req-123"}
    assert error.body == body
    assert error.request_id == "req-123"
    assert (error.method, error.path) == ("POST", "/webhooks/v1/endpoints")
    assert str(error) == f"{status} {code}: {message} (POST /webhooks/v1/endpoints) [request id req-123]"


@pytest.mark.parametrize(("status", "body", "cls", "code", "message"), SEED_ERRORS, ids=SEED_IDS)
async def test_documented_error_through_the_client(
    fake, status: int, body: bytes, cls: type[APIStatusError], code: str, message: str
) -> None:
    """create_endpoint raises the documented error's class, with the exact str()."""
    client, _ = fake(ApiResponse(status, {"Content-Type": "application/json"}, body), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(cls) as info:
        await client.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/fullstory-webhooks"))
    assert (info.value.code, info.value.message, info.value.body) == (code, message, body)
    assert str(info.value) == f"{status} {code}: {message} (POST /webhooks/v1/endpoints)"


def test_str_of_bad_request_matches_the_issue() -> None:
    """str() reads `400 required_field: uid is required (POST /webhooks/v1/endpoints)`."""
    error = error_from_response(CREATE, ApiResponse(400, {}, SEED_ERRORS[0][1]))
    assert str(error) == "400 required_field: uid is required (POST /webhooks/v1/endpoints)"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (501, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (300, APIStatusError),
        (302, APIStatusError),
        (304, APIStatusError),
        (405, APIStatusError),
        (409, APIStatusError),
        (418, APIStatusError),
        (422, APIStatusError),
        (100, APIStatusError),
    ],
)
def test_error_class(status: int, cls: type[APIStatusError]) -> None:
    """One function maps statuses to classes; unlisted statuses stay plain APIStatusError."""
    assert error_class(status) is cls


def test_teapot_stays_api_status_error_with_its_code() -> None:
    """A 418 with a Fullstory-shaped body is a plain APIStatusError that keeps code and message."""
    error = error_from_response(CREATE, ApiResponse(418, {}, b'{"code": "teapot", "message": "short and stout"}'))
    assert type(error) is APIStatusError
    assert str(error) == "418 teapot: short and stout (POST /webhooks/v1/endpoints)"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_names_the_location(status: int) -> None:
    """A redirect is not followed; the message names where it pointed."""
    response = ApiResponse(status, {"Location": "https://elsewhere.example.com/webhooks/v1/endpoints"}, b"")
    error = error_from_response(CREATE, response)
    assert type(error) is APIStatusError
    assert error.code is None
    assert "https://elsewhere.example.com/webhooks/v1/endpoints" in error.message
    assert "not followed" in error.message


def test_html_502_maps_to_server_error_with_excerpt() -> None:
    """A proxy's HTML 502 page is a ServerError whose message is a short excerpt (its title)."""
    body = (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
        b"</center>\r\n<hr><center>nginx</center>\r\n" + b"<!-- padding -->\r\n" * 200 + b"</body>\r\n</html>\r\n"
    )
    error = error_from_response(CREATE, ApiResponse(502, {"Content-Type": "text/html"}, body))
    assert type(error) is ServerError
    assert error.code is None
    assert error.message == "502 Bad Gateway"
    assert error.body == body
    assert str(error) == "502: 502 Bad Gateway (POST /webhooks/v1/endpoints)"


def test_long_plain_body_is_cut_to_an_excerpt() -> None:
    """A long non-JSON body without a title is cut to about 200 characters with whitespace collapsed."""
    body = b"upstream   connect error\n\n or disconnect/reset before headers. " * 50
    error = error_from_response(CREATE, ApiResponse(503, {}, body))
    assert isinstance(error, ServerError)
    assert error.message.startswith("upstream connect error or disconnect/reset before headers.")
    assert len(error.message) <= 203
    assert error.message.endswith("...")
    assert "\n" not in error.message


@pytest.mark.parametrize(
    "body",
    [b'{"error": "something"}', b'{"code": "x"}', b'{"message": ""}', b"[1, 2]", b'"just a string"'],
)
def test_json_without_a_message_falls_back_to_the_body(body: bytes) -> None:
    """A JSON body that is not a Fullstory error document is shown as an excerpt, with no code."""
    error = error_from_response(CREATE, ApiResponse(400, {}, body))
    assert isinstance(error, BadRequestError)
    assert error.code is None
    assert error.message == body.decode()


def test_message_without_code() -> None:
    """A body with a message but no code keeps the message and has code None."""
    error = error_from_response(CREATE, ApiResponse(404, {}, b'{"message": "gone"}'))
    assert (error.code, str(error)) == (None, "404: gone (POST /webhooks/v1/endpoints)")


def test_non_utf8_body_does_not_crash() -> None:
    """Bytes that are not UTF-8 still give a readable message."""
    error = error_from_response(CREATE, ApiResponse(500, {}, b"\xff\xfe broken \x80"))
    assert "broken" in error.message


@pytest.mark.parametrize(
    ("status", "message"), [(503, "Service Unavailable"), (404, "Not Found"), (599, "no response body")]
)
def test_empty_body_uses_the_reason_phrase(status: int, message: str) -> None:
    """An empty error body is described by the HTTP reason phrase."""
    assert error_from_response(CREATE, ApiResponse(status, {}, b"")).message == message


@pytest.mark.parametrize(
    ("headers", "request_id"),
    [
        ({"X-Request-Id": "a1"}, "a1"),
        ({"x-fullstory-request-id": "b2"}, "b2"),
        ({"Request-Id": "c3"}, "c3"),
        ({}, None),
    ],
)
def test_request_id_is_picked_up(headers: dict[str, str], request_id: str | None) -> None:
    """The request id comes from the response headers and ends the str() when present."""
    error = error_from_response(CREATE, ApiResponse(500, headers, SEED_ERRORS[5][1]))
    assert error.request_id == request_id
    assert str(error).endswith(f"[request id {request_id}]" if request_id else "(POST /webhooks/v1/endpoints)")


@pytest.mark.parametrize(
    ("header", "retry_after"),
    [("1", 1.0), ("2.5", 2.5), ("0", 0.0), (" 7 ", 7.0), ("soon", None), (None, None)],
)
def test_rate_limit_error_carries_retry_after(header: str | None, retry_after: float | None) -> None:
    """A 429 error's retry_after is the parsed Retry-After header (None when absent or garbage)."""
    headers = {"Retry-After": header} if header is not None else {}
    error = error_from_response(CREATE, ApiResponse(429, headers, SEED_ERRORS[4][1]))
    assert isinstance(error, RateLimitError)
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        ("120", 120.0),
        ("0", 0.0),
        ("0.5", 0.5),
        ("2.25", 2.25),
        ("  3  ", 3.0),
    ],
)
def test_parse_retry_after_seconds(value: str, seconds: float) -> None:
    """Delta-seconds, whole or fractional, parse to that many seconds."""
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    """An HTTP-date is the number of seconds from now until then (now injected)."""
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: now) == 30.0


def test_parse_retry_after_http_date_from_the_clock() -> None:
    """Without injection an HTTP-date is measured against the real clock."""
    value = format_datetime(datetime.fromtimestamp(datetime.now(UTC).timestamp() + 90, UTC), usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 88 <= seconds <= 90


@pytest.mark.parametrize("value", ["-5", "-0.5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_parse_retry_after_never_negative(value: str) -> None:
    """A negative delay or a date in the past means retry now (0), never a negative wait."""
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=lambda: now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "1s", "Wed, 32 Oct 2015 07:28:00 GMT", "Tomorrow 7am"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    """Absent or unreadable values give None (fall back to backoff)."""
    assert parse_retry_after(value) is None


def test_parse_retry_after_huge_is_capped() -> None:
    """Absurd values are capped rather than overflowing a sleep."""
    assert parse_retry_after("inf") == 1e9
    assert parse_retry_after("1e300") == 1e9


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value: str) -> None:
    """Any header text gives None or a finite non-negative number of seconds."""
    seconds = parse_retry_after(value, now=lambda: 1_600_000_000.0)
    assert seconds is None or 0.0 <= seconds <= 1e9


async def test_decode_response_passes_success_through() -> None:
    """2xx responses pass through decode_response unchanged."""
    for status in (200, 201, 204):
        response = ApiResponse(status, {}, b"")

        async def handler(request: ApiRequest, response: ApiResponse = response) -> ApiResponse:
            return response

        assert await decode_response(CREATE, handler) is response


async def test_decode_response_raises_for_non_2xx() -> None:
    """A non-2xx response is raised as its typed error by the middleware."""

    async def handler(request: ApiRequest) -> ApiResponse:
        return ApiResponse(403, {}, SEED_ERRORS[2][1])

    with pytest.raises(PermissionDeniedError, match=r"^403 forbidden: insufficient permissions"):
        await decode_response(CREATE, handler)
