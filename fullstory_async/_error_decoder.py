"""Response decoding: a non-2xx `ApiResponse` becomes a typed `APIStatusError`, a 2xx body the call's result.

It sits inside the retry middleware, so retry decides on typed errors
(``RateLimitError.retry_after``, `ResponseDecodeError` for a garbled 2xx body) and a
decode failure is one failed attempt (never retried). The one mapping from status to class
is `error_class`. Every error leaving it is scrubbed of the client's secrets (`_scrub`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from http import HTTPStatus

from fullstory_async._exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler, Middleware
from fullstory_async._scrub import Secrets, request_secrets, scrub_error

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}
_EXCERPT = 200
_MESSAGE_MAX = 1000  # a hostile server's message must not flood logs and terminals
_SPACE = re.compile(r"\s+")
logger = logging.getLogger("fullstory_async")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def error_class(status: int) -> type[APIStatusError]:
    """Return the error class for an HTTP status (any unlisted non-5xx status is `APIStatusError`)."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIStatusError)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Return the seconds to wait for a ``Retry-After`` value: delta-seconds (whole or fractional) or an HTTP-date.

    Returns ``None`` when the value is absent or unreadable; never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - now()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), 1e9)


def _excerpt(body: bytes) -> str:
    title = _TITLE.search(body[:4096])
    raw = title.group(1) if title else body[: _EXCERPT * 4]
    text = _SPACE.sub(" ", raw.decode("utf-8", errors="replace")).strip()
    return text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")


def _read_error_body(response: ApiResponse) -> tuple[str | None, str]:
    """Return ``(code, message)`` from a Fullstory error body, or a plain excerpt of any other body."""
    if 300 <= response.status < 400 and "location" in response.headers:
        # Whatever the body says, name where the redirect pointed: it was not followed.
        return None, f"redirect to {response.headers['location']} not followed"
    document: object = None
    if response.body:
        try:
            # UTF-8 only, as a 2xx body: json's sniffing would read UTF-16 or UTF-32, which the kept
            # body (scrubbed as UTF-8) would then hold unscrubbed
            document = json.loads(response.body.decode("utf-8"))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
            document = None
    if isinstance(document, dict):
        code, message = document.get("code"), document.get("message")
        if isinstance(message, str) and message:
            if len(message) > _MESSAGE_MAX:
                message = message[:_MESSAGE_MAX] + "..."
            if isinstance(code, str) and len(code) > _EXCERPT:
                code = code[:_EXCERPT] + "..."
            return (code if isinstance(code, str) and code else None), message
    excerpt = _excerpt(response.body) if response.body else ""
    if excerpt:  # a body of only whitespace says nothing: fall back to the reason phrase
        return None, excerpt
    try:
        return None, HTTPStatus(response.status).phrase
    except ValueError:
        return None, "no response body"


def error_from_response(request: ApiRequest, response: ApiResponse) -> APIStatusError:
    """Build the typed error for a non-2xx response, scrubbed of the secrets the request carried.

    A client's chain scrubs with all the secrets the client holds instead (`response_decoder`).
    """
    error = _status_error(request, response)
    secrets = Secrets()
    secrets.hold(request_secrets(request.body))
    scrub_error(error, secrets)
    return error


def _status_error(request: ApiRequest, response: ApiResponse) -> APIStatusError:
    code, message = _read_error_body(response)
    error = error_class(response.status)(
        message,
        status=response.status,
        code=code,
        request_id=response.request_id,
        headers=response.headers,
        body=response.body,
        method=request.method,
        path=request.path,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = parse_retry_after(response.headers.get("retry-after"))
    return error


def response_decoder(secrets: Secrets) -> Middleware:
    """Return the response-decoding middleware of a client whose held secrets are ``secrets``.

    It decodes a 2xx body with ``request.decode`` into ``data`` and raises the typed error
    for other statuses. It holds the request's endpoint secrets while the attempt is in
    flight, and scrubs every error that leaves it (the transport's, a status error, a
    decode error) with `scrub_error`: the one place server text is cleaned before anything
    above it (retry, hooks, logs, the CLI) sees it.
    """

    async def decode_response(request: ApiRequest, call_next: Handler) -> ApiResponse:
        held = request_secrets(request.body)  # none for a body without a secret (every GET and DELETE)
        if held:
            secrets.hold(held)
        started = time.perf_counter()
        try:
            response = _scrub_request_id(await call_next(request), secrets)
            if logger.isEnabledFor(logging.DEBUG):
                _log_response(request, response, time.perf_counter() - started)
            if not 200 <= response.status < 300:
                raise _status_error(request, response)
            return _decoded(request, response)
        except APIError as exc:
            scrub_error(exc, secrets)
            raise
        finally:
            if held:
                secrets.release(held)

    return decode_response


def _scrub_request_id(response: ApiResponse, secrets: Secrets) -> ApiResponse:
    """``response``, with its headers scrubbed when its request id holds a secret.

    The request id is the one header of a 2xx that goes to log records, hooks and spans.
    """
    request_id = response.request_id
    if request_id is None or secrets.scrub(request_id) == request_id:
        return response
    return ApiResponse(response.status, secrets.scrub_headers(response.headers), response.body)


def _log_response(request: ApiRequest, response: ApiResponse, seconds: float) -> None:
    """Log an attempt's response at DEBUG: metadata only."""
    logger.debug(
        "%s %s -> %d in %.1f ms",
        request.method,
        request.path,
        response.status,
        seconds * 1000,
        extra={
            "fullstory_request_id": response.request_id,
            "fullstory_status": response.status,
        },
    )


def _decoded(request: ApiRequest, response: ApiResponse) -> ApiResponse:
    """``response`` with ``data`` decoded by ``request.decode`` (unchanged without one)."""
    decode = request.decode
    if decode is None:
        return response
    try:
        data = decode(response.body)
    except ResponseDecodeError as exc:
        raise ResponseDecodeError(
            exc.reason, field=exc.field, body=response.body, method=request.method, path=request.path
        ) from exc.__cause__
    except Exception as exc:  # a raw request's own decoder: still a typed decode failure
        raise ResponseDecodeError(
            f"{type(exc).__name__} in the request's decode",
            body=response.body,
            method=request.method,
            path=request.path,
        ) from exc
    return response.with_outcome(data=data)


decode_response = response_decoder(Secrets())
"""The response decoder of a chain without a client (its requests' own endpoint secrets are scrubbed)."""
