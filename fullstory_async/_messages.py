"""The records that travel through the middleware pipeline: `ApiRequest` and `ApiResponse`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from fullstory_async._timeout import Timeout

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: Response headers that may carry a request id, first match wins (the API documents none).
REQUEST_ID_HEADERS = ("x-request-id", "x-fullstory-request-id", "request-id")


def _redacted(headers: Mapping[str, str]) -> str:
    shown = {k: ("<redacted>" if k.lower() in _SENSITIVE_HEADERS else v) for k, v in headers.items()}
    return repr(shown)


def _lower_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(headers, MappingProxyType):  # already converted: a copy of a response (`attrs.evolve`)
        return headers
    return MappingProxyType({k.lower(): v for k, v in headers.items()})


@attrs.frozen
class ApiRequest:
    """One API call as the pipeline sees it, before auth and transport.

    Middleware derives changed copies with `with_header` or `attrs.evolve`.
    """

    method: str
    """HTTP method, upper case."""

    path: str
    """Path below the base URL, already percent-encoded, starting with ``/``."""

    params: tuple[tuple[str, str], ...] = ()
    """Query parameters in order."""

    headers: Mapping[str, str] = attrs.field(factory=dict, repr=_redacted)
    """Request headers; ``Authorization`` is added by the auth middleware and never shown."""

    body: bytes | None = attrs.field(default=None, repr=lambda b: "None" if b is None else f"<{len(b)} bytes>")
    """JSON body (already encoded), or ``None``. Not shown by ``repr`` (it may hold a secret)."""

    timeout: Timeout | None = None
    """Timeout of each attempt; ``None`` means the client's default."""

    operation: str = ""
    """Name of the SDK operation (``"create_endpoint"``), for logs and metrics."""

    idempotent: bool | None = None
    """Whether repeating the call is safe; ``None`` derives it from the method."""

    deadline: float | None = None
    """The ``time.monotonic()`` instant by which the whole operation must end, or ``None``.

    Set by the retry layer: ``RetryPolicy.operation_timeout`` from the call's start, or the
    deadline of the operation's budget (``update_endpoint``'s read and write, a bulk item); one
    the caller set (`Client.send`, a middleware) wins if it is earlier. Every layer below it
    that waits (the rate governor's pauses and pacing slots, the transport's timeout) must not
    wait past it: a wait that would end later fails at once with a typed error instead.
    """

    decode: Callable[[bytes], Any] | None = attrs.field(default=None, repr=False, eq=False)
    """How a 2xx body becomes the call's result (`ApiResponse.data`), or ``None`` to keep the bytes.

    It runs below the retry layer, inside the attempt: a 2xx body that does not decode
    (raises `ResponseDecodeError`) is a failed attempt, never retried (the same bytes would
    fail the same way).
    """

    @property
    def is_idempotent(self) -> bool:
        """True when a retry after an ambiguous failure cannot apply a change twice."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method in _IDEMPOTENT_METHODS

    def with_header(self, name: str, value: str) -> ApiRequest:
        """Return a copy with one header set (replacing any of the same name)."""
        lower = name.lower()
        headers = {k: v for k, v in self.headers.items() if k.lower() != lower}
        headers[name] = value
        return self._copy(headers, self.deadline)

    def with_deadline(self, deadline: float | None) -> ApiRequest:
        """Return a copy whose operation must end by ``deadline`` (a ``time.monotonic()`` instant)."""
        return self._copy(self.headers, deadline)

    def _copy(self, headers: Mapping[str, str], deadline: float | None) -> ApiRequest:
        # The constructor, not `attrs.evolve`: every call copies its request, and evolve costs more.
        return ApiRequest(
            self.method,
            self.path,
            self.params,
            headers,
            self.body,
            self.timeout,
            self.operation,
            self.idempotent,
            deadline,
            self.decode,
        )


@attrs.frozen
class ApiResponse:
    """An HTTP response as the pipeline sees it: status, headers and the whole body."""

    status: int
    """HTTP status code."""

    headers: Mapping[str, str] = attrs.field(converter=_lower_keys, factory=dict)
    """Response headers with lower-case names."""

    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes>")
    """The raw body."""

    data: Any = attrs.field(default=None, repr=False, eq=False)
    """The body decoded by the request's ``decode`` (``None`` when it has none)."""

    attempts: int = 1
    """HTTP attempts the call took, retries included (set by the retry layer)."""

    def with_outcome(self, *, data: Any = None, attempts: int | None = None) -> ApiResponse:
        """Return a copy with ``data`` and/or ``attempts`` set (this response when they are already so)."""
        if (data is None or data is self.data) and (attempts is None or attempts == self.attempts):
            return self  # frozen: the same record serves (a call answered at its first attempt)
        return ApiResponse(
            self.status,
            self.headers,  # already converted: the converter passes it through
            self.body,
            self.data if data is None else data,
            self.attempts if attempts is None else attempts,
        )

    @property
    def request_id(self) -> str | None:
        """The server's request id, when a response header carries one."""
        for name in REQUEST_ID_HEADERS:
            value = self.headers.get(name)
            if value:
                return value
        return None

    @property
    def is_success(self) -> bool:
        """True for 2xx statuses."""
        return 200 <= self.status < 300
