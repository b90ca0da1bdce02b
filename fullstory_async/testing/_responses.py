"""Response bodies: JSON success bodies, the API's ``{message, code}`` errors, fault pages.

The messages and codes of the standard errors are the documented ones, verbatim
(reference §3).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

JSON = "application/json"

UNAUTHORIZED = (401, "unauthorized", "access is unauthorized")
FORBIDDEN = (403, "forbidden", "insufficient permissions")
NOT_FOUND = (404, "resource_not_found", "Requested resource does not exist")
TOO_MANY_REQUESTS = (
    429,
    "too_many_requests",
    "Too many requests. Client has exceeded the rate limit for this endpoint.",
)
SERVER_ERROR = (500, "server_error", "Server error was encountered")

REQUIRED_FIELD = "required_field"
INVALID_ARGUMENT = "invalid_argument"
ALREADY_EXISTS = "already_exists"

BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """Raised by a handler to answer with the API's error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def bad_request(cls, code: str, message: str) -> ApiError:
        """Build a 400 with ``code`` (e.g. ``required_field``, ``invalid_argument``)."""
        return cls(400, code, message)

    @classmethod
    def not_found(cls) -> ApiError:
        """Build the documented 404."""
        return cls(*NOT_FOUND)


def dumps(payload: Any) -> bytes:
    """Serialise ``payload`` as compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Build a JSON response."""
    return web.Response(body=dumps(payload), status=status, content_type=JSON, headers=headers)


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    """Build a response with pre-serialised JSON ``body``."""
    return web.Response(body=body, status=status, content_type=JSON)


def error_body(code: str, message: str) -> bytes:
    """Serialise the ``{"message", "code"}`` error body."""
    return dumps({"message": message, "code": code})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Build an error response with the API's body."""
    return web.Response(body=error_body(code, message), status=status, content_type=JSON, headers=headers)


def format_retry_after(seconds: float, *, fractional: bool = False) -> str:
    """Format ``Retry-After``: whole seconds rounded up, at least 1; or milliseconds.

    Rounding up keeps the promise that a request sent after the wait succeeds.
    """
    if fractional:
        return f"{max(math.ceil(seconds * 1000 - 1e-6), 1) / 1000:.3f}"
    return str(max(math.ceil(seconds - 1e-9), 1))
