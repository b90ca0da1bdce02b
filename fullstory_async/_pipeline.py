"""The middleware chain: how an `ApiRequest` becomes an `ApiResponse`.

A middleware is ``async def mw(request, call_next) -> ApiResponse``. It may change the
request (``request.with_header(...)``), call ``await call_next(request)`` zero or more
times, inspect or replace the response, or raise. The first middleware in a list is the
outermost: it sees the request first and the response last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fullstory_async._messages import ApiRequest, ApiResponse

Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]
"""Something that turns a request into a response: the transport, or the rest of a chain."""

Middleware = Callable[[ApiRequest, Handler], Awaitable[ApiResponse]]
"""``async (request, call_next) -> response``."""


def compose(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """Wrap ``handler`` in ``middleware``, the first item outermost.

    The chain is built once; calling it costs one function call per middleware.
    """
    chain = handler
    for mw in reversed(middleware):
        chain = _link(mw, chain)
    return chain


def _link(mw: Middleware, call_next: Handler) -> Handler:
    # A plain function returning the middleware's coroutine: no extra frame per layer,
    # so every resumption of the transport passes through fewer frames.
    def call(request: ApiRequest) -> Awaitable[ApiResponse]:
        return mw(request, call_next)

    return call
