"""Every error the SDK raises.

The tree::

    FullstoryError
    ├── InvalidArgumentError (also ValueError)    bad input, raised before any I/O
    ├── ClientClosedError (also RuntimeError)      the client (or the session passed in) was closed
    ├── EventLoopError (also RuntimeError)         the client was used from another event loop than its session's
    ├── EndpointExistsError                        ensure/provision with on_exists="error"
    ├── APIError                                   something went wrong talking to the API
    │   ├── APIStatusError                         the API answered with a non-2xx status
    │   │   ├── BadRequestError                    400
    │   │   ├── AuthenticationError                401
    │   │   ├── PermissionDeniedError              403
    │   │   ├── NotFoundError                      404
    │   │   ├── RateLimitError                     429 (``retry_after``)
    │   │   └── ServerError                        500 and above
    │   ├── APIConnectionError                     no response: DNS, refused, reset
    │   │   └── APITimeoutError (also TimeoutError)  an attempt's timeout, or the operation's deadline
    │   └── ResponseDecodeError                    a 2xx body that does not fit the model

Messages never contain the API key or an endpoint secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from fullstory_async._models import Endpoint

_EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})


def shown(value: object, limit: int = 60) -> str:
    """Return a short ``repr`` of a rejected argument for an error message; never raise.

    (``repr`` of an int of more than 4,300 digits raises ``ValueError``.) Never use it on a secret.
    """
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


class FullstoryError(Exception):
    """Root of every error raised by ``fullstory_async``.

    ``attempts`` is the number of HTTP attempts the failed call (or bulk item) made, retries
    included; 0 when it failed before sending anything. ``sent`` is False when the call sent
    nothing at all (a closed client; the rate governor ended its attempt because the wait would
    have outlasted the deadline, or because the client closed while the call waited there):
    nothing can have been applied. Such an attempt is not counted in ``attempts`` and not
    retried; when an earlier attempt was sent, ``sent`` stays True.
    """

    attempts: int = 0
    sent: bool = True

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by fields, not by calling ``__init__`` again (process pools, pytest-xdist)."""
        state = dict(vars(self))
        read_only = [name for name, value in state.items() if isinstance(value, MappingProxyType)]
        state.update({name: dict(state[name]) for name in read_only}, _read_only=read_only)
        return _new_error, (type(self), self.args), state

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = dict(state or {})
        read_only = state.pop("_read_only", ())
        for name, value in state.items():  # read-only mappings (response headers) become read-only again
            setattr(self, name, MappingProxyType(value) if name in read_only else value)


def _new_error(cls: type[FullstoryError], args: tuple[Any, ...]) -> FullstoryError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)  # the message (an OSError subclass, APITimeoutError, needs it said)
    return error


E = TypeVar("E", bound=FullstoryError)


def unsent(error: E) -> E:
    """Mark ``error`` as ending an attempt before anything was sent: not an attempt, not ambiguous, not retried."""
    error.sent = False
    return error


class InvalidArgumentError(FullstoryError, ValueError):
    """An argument was rejected before any I/O.

    ``field`` names the offending argument or model field (``"url"``,
    ``"event_types[0].event_name"``, ``"api_key"``...).
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ClientClosedError(FullstoryError, RuntimeError):
    """The client was used after ``aclose()``; create a new ``Client``."""


class EventLoopError(FullstoryError, RuntimeError):
    """The client's HTTP session belongs to another event loop (e.g. a second ``asyncio.run``).

    An aiohttp session works only in the loop that created it: create the ``Client``
    inside the loop that uses it (``async with Client() as fs:``).
    """


class EndpointExistsError(FullstoryError):
    """An endpoint with the URL already exists and ``on_exists="error"`` was asked for.

    ``endpoint`` is the existing endpoint.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(f"an endpoint for {endpoint.url} already exists (id {endpoint.id})")
        self.endpoint = endpoint


class APIError(FullstoryError):
    """Base of the errors that come from talking to the API.

    ``method`` and ``path`` name the call that failed (no host, no query secrets).
    """

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path


class APIStatusError(APIError):
    """The API answered with a status outside 2xx.

    Attributes:
        status: the HTTP status code.
        code: the error's ``code`` from the body (``"required_field"``...), or ``None``
            when the body is not a Fullstory error document.
        message: the error's ``message`` from the body, or a short excerpt of a
            non-JSON body.
        request_id: the request id from the response headers, when there is one.
        headers: the response headers (lower-case names).
        body: the raw response body.

    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] = _EMPTY_HEADERS,
        body: bytes = b"",
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.headers = headers
        self.body = body

    def __str__(self) -> str:
        text = f"{self.status}"
        if self.code:
            text += f" {self.code}"
        text += f": {self.message}"
        if self.method:
            text += f" ({self.method} {self.path})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text


class BadRequestError(APIStatusError):
    """400: the API rejected the input (``code`` says which rule)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, malformed or unknown."""


class PermissionDeniedError(APIStatusError):
    """403: the API key may not do this (webhooks need an Admin or Architect key)."""


class NotFoundError(APIStatusError):
    """404: no such endpoint or event type."""


class RateLimitError(APIStatusError):
    """429: the rate limit was hit.

    ``retry_after`` is the server's ``Retry-After`` in seconds (``None`` when absent or
    unreadable). It is raised to the caller only once the retry policy gave up.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """500 and above: the server failed; the change may or may not have been applied."""


class APIConnectionError(APIError):
    """No usable response arrived: DNS failure, refused or reset connection, TLS error.

    For a POST the server may still have applied the change.
    """


class APITimeoutError(APIConnectionError, TimeoutError):
    """The call took longer than its timeout; the server may have applied it."""


class ResponseDecodeError(APIError):
    """A 2xx response body did not fit the expected model.

    ``field`` is the path of the field that failed (``"$.created"``), ``reason`` says why.
    """

    def __init__(self, reason: str, *, field: str = "$", body: bytes = b"", method: str = "", path: str = "") -> None:
        where = f" ({method} {path})" if method else ""
        super().__init__(f"could not decode response at {field}: {reason}{where}", method=method, path=path)
        self.field = field
        self.reason = reason
        self.body = body
