"""stream_map: backpressure after a consumer stops, workers that always signal their end, closing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fullstory_async import ClientClosedError
from fullstory_async._bulk.streaming import stream_map


class Result:
    def __init__(self, index: int, error: Exception | None = None) -> None:
        self.index = index
        self.error = error


async def settle() -> None:
    """Let every runnable task run until all of them wait (no real time passes)."""
    for _ in range(200):
        await asyncio.sleep(0)


@pytest.mark.parametrize("concurrency", [1, 4, 16])
async def test_a_consumer_that_stops_reading_lets_at_most_2x_concurrency_items_complete(concurrency: int) -> None:
    """After a break without closing the stream, at most 2 * concurrency further items complete."""
    completed: list[int] = []

    async def work(index: int, _item: int) -> Result:
        await asyncio.sleep(0)
        completed.append(index)
        return Result(index)

    stream = stream_map(range(10_000), work, concurrency=concurrency)
    async for _ in stream:
        break
    await settle()
    assert 1 <= len(completed) <= 1 + 2 * concurrency
    await stream.aclose()


async def test_a_worker_killed_by_a_stray_cancellation_does_not_hang_the_stream() -> None:
    """A CancelledError raised from below (not the caller's) ends the stream instead of hanging it."""

    async def work(index: int, _item: int) -> Result:
        if index == 3:
            raise asyncio.CancelledError  # e.g. a pool waiter cancelled by a closing session
        return Result(index)

    seen: list[int] = []

    async def consume() -> None:
        async for result in stream_map(range(10), work, concurrency=2):
            seen.append(result.index)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consume(), 5)
    assert 3 not in seen
    assert len(seen) <= 9


async def test_a_closed_client_result_stops_the_feed_then_raises_after_the_results() -> None:
    """A result carrying ClientClosedError: no more input is pulled, taken items all get results, then it raises."""
    pulled: list[int] = []
    closed = asyncio.Event()

    def items() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    async def work(index: int, _item: int) -> Result:
        if index == 5:
            closed.set()
        if closed.is_set():
            await asyncio.sleep(0)
            return Result(index, ClientClosedError("the client is closed"))
        await asyncio.sleep(0)
        return Result(index)

    seen: list[int] = []

    async def consume() -> None:
        async for result in stream_map(items(), work, concurrency=4):
            seen.append(result.index)

    with pytest.raises(ClientClosedError):
        await consume()
    assert sorted(seen) == pulled
    assert len(pulled) < 5 + 2 * 4 + 1
