"""Bounded concurrent streaming: apply an async function to a lazily pulled input.

Shared by `provision` and the declarative `apply`. The guarantees, each tested:

* at most ``concurrency`` items are in flight, and at most ``2 * concurrency`` items are
  taken from the input and not yet handed to the consumer: a consumer that stops reading
  (``break`` without closing the stream) lets at most that many more items complete;
* the input is pulled lazily, never materialised; results come as each item finishes;
* every item taken from the input gets its result before the stream ends; the workers
  signal their end in a ``finally``, so a worker that dies cannot leave the stream waiting;
* a result whose ``error`` is a `ClientClosedError` (the client or the caller's aiohttp
  session was closed) stops the feed: the items in flight finish, their results are
  yielded, then the stream raises `ClientClosedError`;
* anything ``work`` raises (a programmer error) or the input raises also stops the feed
  and is raised once the results of the items already started are yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import TypeVar

from fullstory_async._exceptions import ClientClosedError

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()  # a worker's last message


class _Feed:
    """Numbered items pulled one at a time, by any number of workers, until stopped."""

    def __init__(self, items: Iterable[T] | AsyncIterable[T]) -> None:
        self._sync = iter(items) if not isinstance(items, AsyncIterable) else None
        self._async = aiter(items) if isinstance(items, AsyncIterable) else None
        self._lock = asyncio.Lock()
        self._number = 0
        self.error: BaseException | None = None

    def stop(self, error: BaseException) -> None:
        """Pull no more items; ``error`` (the first one given) is raised at the end of the stream."""
        self.error = self.error or error

    async def next(self) -> tuple[int, object] | None:
        async with self._lock:
            if self.error is not None:
                return None
            try:
                item = next(self._sync) if self._sync is not None else await anext(self._async)  # type: ignore[arg-type]
            except (StopIteration, StopAsyncIteration):
                return None
            except Exception as exc:  # the caller's iterable failed: stop, and raise it after the results
                self.stop(exc)
                return None
            number, self._number = self._number, self._number + 1
            return number, item


def _closed(result: object) -> ClientClosedError | None:
    error = getattr(result, "error", None)
    return error if isinstance(error, ClientClosedError) else None


async def stream_map(
    items: Iterable[T] | AsyncIterable[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int,
) -> AsyncGenerator[R, None]:
    """Yield ``await work(index, item)`` for every item, at most ``concurrency`` at a time, as each finishes.

    ``work`` should turn per-item failures into results (with an ``error`` attribute).
    Anything it raises instead stops the feed; it is raised, like an error of ``items``
    itself or a result's `ClientClosedError`, once the items already started have been
    yielded. Closing the stream early cancels the items in flight.
    """
    feed = _Feed(items)
    results: asyncio.Queue[object] = asyncio.Queue()  # bounded by the permits below
    permits = asyncio.Semaphore(2 * concurrency)  # items taken and not yet yielded

    async def worker() -> None:
        try:
            while True:
                await permits.acquire()
                pulled = await feed.next()
                if pulled is None:
                    permits.release()
                    return
                result = await work(*pulled)  # type: ignore[arg-type]
                results.put_nowait(result)
                if (closed := _closed(result)) is not None:
                    feed.stop(closed)
        except (Exception, asyncio.CancelledError) as exc:  # a CancelledError here may come from below, not us
            feed.stop(exc)
        finally:
            results.put_nowait(_DONE)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        running = concurrency
        while running:
            result = await results.get()
            if result is _DONE:
                running -= 1
                continue
            permits.release()
            yield result  # type: ignore[misc]
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if feed.error is not None:
        raise feed.error
