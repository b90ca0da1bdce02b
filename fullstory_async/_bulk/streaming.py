"""Bounded concurrent streaming: apply an async function to a lazily pulled input.

Shared by `provision` and the declarative `apply`: at most ``concurrency`` items are in
flight, results are yielded as they finish, the input is never materialised, and a
consumer that stops early cancels the rest cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Feed:
    """Numbered items pulled one at a time, by any number of workers."""

    def __init__(self, items: Iterable[T] | AsyncIterable[T]) -> None:
        self._sync = iter(items) if not isinstance(items, AsyncIterable) else None
        self._async = aiter(items) if isinstance(items, AsyncIterable) else None
        self._lock = asyncio.Lock()
        self._number = 0
        self.error: BaseException | None = None

    async def next(self) -> tuple[int, object] | None:
        async with self._lock:
            if self.error is not None:
                return None
            try:
                item = next(self._sync) if self._sync is not None else await anext(self._async)  # type: ignore[arg-type]
            except (StopIteration, StopAsyncIteration):
                return None
            except Exception as exc:  # the caller's iterable failed: stop, and raise it after the results
                self.error = exc
                return None
            number, self._number = self._number, self._number + 1
            return number, item


async def stream_map(
    items: Iterable[T] | AsyncIterable[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int,
) -> AsyncGenerator[R, None]:
    """Yield ``await work(index, item)`` for every item, at most ``concurrency`` at a time, as each finishes.

    ``work`` should turn per-item failures into results. Anything it raises instead
    stops the feed; it is raised, like an error of ``items`` itself, once the items
    already started have been yielded.
    """
    feed = _Feed(items)
    results: asyncio.Queue[R | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker() -> None:
        try:
            while (pulled := await feed.next()) is not None:
                await results.put(await work(*pulled))  # type: ignore[arg-type]
        except Exception as exc:
            feed.error = feed.error or exc
        await results.put(None)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        running = concurrency
        while running:
            result = await results.get()
            if result is None:
                running -= 1
            else:
                yield result
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if feed.error is not None:
        raise feed.error
