"""Rate governor matrix (issue 12): `provision` against each limiter shape, server in another process.

    python bench/governor.py            # every shape; one table; exit 1 when a target is missed
    python bench/governor.py a fixed    # some shapes only (names in SHAPES)

Each server is a FakeFullstory run by this file in a child process (``serve`` mode), built
from the public API only, with a whole-second ``Retry-After``; the parent changes its limit
at runtime and reads its counts over stdin/stdout. Each figure is for the whole job,
warm-up included (the prefetch listing and the first burst). R is the server's limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fullstory_async import Client, CreateEndpointRequest

CONCURRENCY = 64
MOST_429 = 0.10  # on every shape (issue 20: relaxed from 3-5%; a refused call costs one retry, a stall costs the job)


# -- the server process -----------------------------------------------------------------


async def serve(spec: dict[str, Any]) -> None:
    """Run one fake; each stdin line is a JSON command answered by one stdout line."""
    from aiohttp import web

    from fullstory_async.testing import FakeFullstory, Fault, RateLimit

    def limit(value: dict[str, Any] | None) -> RateLimit | None:
        return None if value is None else RateLimit(**value)

    answered: list[tuple[float, int]] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        answered.append((time.monotonic(), response.status))
        return response

    fake = FakeFullstory(rate_limit=limit(spec.get("limit")), request_log_size=0, seed=7)
    fake.app.middlewares.append(count)
    if spec.get("stray"):
        fake.faults.add(Fault.too_many_requests(1), probability=spec["stray"])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with fake:
        print(json.dumps({"url": fake.url, "key": fake.api_key}), flush=True)
        while line := await reader.readline():
            command = json.loads(line)
            if "limit" in command:
                fake.rate_limit = limit(command["limit"])
                print(json.dumps({"at": time.monotonic()}), flush=True)
            else:  # counts of answers in [since, until)
                since, until = command.get("since", 0.0), command.get("until", float("inf"))
                window = [status for at, status in answered if since <= at < until]
                print(json.dumps({"total": len(window), "429": window.count(429)}), flush=True)


class Server:
    """A fake in a child process."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, key: str) -> None:
        self.process, self.url, self.key = process, url, key

    @classmethod
    async def start(cls, **spec: Any) -> Server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "serve", json.dumps(spec),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        hello = json.loads(await process.stdout.readline())
        return cls(process, hello["url"], hello["key"])

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        answer: dict[str, Any] = json.loads(await self.process.stdout.readline())
        return answer

    async def share_429(self, since: float = 0.0, until: float = float("inf")) -> tuple[float, int]:
        counts = await self.ask(since=since, until=until)
        return counts["429"] / max(counts["total"], 1), counts["total"]

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()

    def client(self, **kwargs: Any) -> Client:
        return Client(self.key, base_url=self.url, **kwargs)  # the default RetryPolicy, as users run it


# -- jobs -------------------------------------------------------------------------------


def requests(n: int, prefix: str) -> Iterator[CreateEndpointRequest]:
    for i in range(n):
        yield CreateEndpointRequest(url=f"https://example.com/{prefix}/{i}", event_types=["note.created"], secret="s3")


async def provision(fs: Client, n: int, prefix: str, **kwargs: Any) -> tuple[float, list[float]]:
    """Run a whole job; return its seconds and each result's completion time; fail on a failed item."""
    start = time.monotonic()
    done: list[float] = []
    async for result in fs.webhooks.provision(
        requests(n, prefix), concurrency=kwargs.pop("concurrency", CONCURRENCY), **kwargs
    ):
        if not result.ok:
            raise SystemExit(f"item {result.index} failed: {result.error!r}")
        done.append(time.monotonic())
    return time.monotonic() - start, done


Row = tuple[str, str, str, str, bool]


async def bucket(name: str, rate: float, burst: int, n: int, least: float) -> list[Row]:
    server = await Server.start(limit={"rate": rate, "burst": burst})
    async with server.client() as fs:
        seconds, _ = await provision(fs, n, "b")
    share, _ = await server.share_429()
    await server.stop()
    ratio = n / seconds / rate
    target = f">= {least:.2f} R, <= {MOST_429:.0%} 429"
    return [
        (name, f"{ratio:.2f} R ({n / seconds:.0f}/s)", f"{share:.1%}", target, ratio >= least and share <= MOST_429)
    ]


async def shape_a() -> list[Row]:
    return await bucket("token bucket 100/s burst 10, 600 creates", 100, 10, 600, 0.85)


async def shape_b() -> list[Row]:
    return await bucket("token bucket 200/s burst 20, 3,000 creates", 200, 20, 3000, 0.90)


async def shape_fixed() -> list[Row]:
    server = await Server.start(limit={"rate": 100, "fixed_window": True})
    async with server.client() as fs:
        seconds, _ = await provision(fs, 1500, "f")
    share, _ = await server.share_429()
    await server.stop()
    ratio = 1500 / seconds / 100
    ok = ratio >= 0.85 and share <= MOST_429
    return [
        ("fixed window 100 per second, 1,500 creates", f"{ratio:.2f} R", f"{share:.1%}", ">= 0.85 R, <= 10% 429", ok)
    ]


async def shape_stray() -> list[Row]:
    server = await Server.start(stray=0.01)
    rates = []
    for governor in (False, True):
        async with server.client(rate_governor=governor) as fs:
            seconds, _ = await provision(fs, 1500, f"s{governor}")
        rates.append(1500 / seconds)
    share, _ = await server.share_429()
    await server.stop()
    ratio = rates[1] / rates[0]
    figure = f"{ratio:.2f}x ({rates[1]:.0f}/s vs {rates[0]:.0f}/s off)"
    return [
        (
            "no limit, 1% stray 429s (Retry-After: 1), 1,500 creates",
            figure,
            f"{share:.1%}",
            ">= 0.7x no governor, <= 10% 429",
            ratio >= 0.7 and share <= MOST_429,
        )
    ]


async def shape_lift() -> list[Row]:
    server = await Server.start(limit={"rate": 20, "burst": 5})
    async with server.client() as fs:
        await provision(fs, 100, "l0")
        at = (await server.ask(limit=None))["at"]
        seconds, _ = await provision(fs, 2000, "l1")
    share, _ = await server.share_429(since=at)
    await server.stop()
    rate = 2000 / seconds
    return [
        (
            "20/s (burst 5), then lifted: next 2,000 creates",
            f"{rate:.0f}/s",
            f"{share:.1%}",
            ">= 200/s, <= 10% 429",
            rate >= 200 and share <= MOST_429,
        )
    ]


async def shape_orgs() -> list[Row]:
    servers = await asyncio.gather(*(Server.start(limit={"rate": 50, "burst": 5}) for _ in range(8)))
    clients = [server.client() for server in servers]
    jobs = await asyncio.gather(*(provision(fs, 300, "o", concurrency=32) for fs in clients))
    for fs in clients:
        await fs.aclose()
    shares = [(await server.share_429())[0] for server in servers]
    for server in servers:
        await server.stop()
    ratios = [300 / seconds / 50 for seconds, _ in jobs]
    figure = f"{min(ratios):.2f}-{max(ratios):.2f} R"
    return [
        (
            "8 orgs (8 clients, 50/s burst 5 each, concurrency 32), 300 creates each",
            figure,
            f"{max(shares):.1%}",
            "each >= 0.8 R, <= 10% 429",
            min(ratios) >= 0.8 and max(shares) <= MOST_429,
        )
    ]


async def shape_drop() -> list[Row]:
    server = await Server.start(limit={"rate": 200, "burst": 20})
    done: list[float] = []
    async with server.client() as fs:
        job = fs.webhooks.provision(requests(3000, "d"), concurrency=CONCURRENCY)
        start = time.monotonic()
        dropped: float | None = None
        async for result in job:
            assert result.ok, result.error
            done.append(now := time.monotonic())
            if dropped is None and now - start >= 5:
                dropped = (await server.ask(limit={"rate": 50, "burst": 5}))["at"]
            if dropped is not None and now >= dropped + 10:
                break
        await job.aclose()  # type: ignore[attr-defined]
    assert dropped is not None
    share, _ = await server.share_429(since=dropped, until=dropped + 10)
    await server.stop()
    rate = sum(dropped < t <= dropped + 10 for t in done) / 10
    ok = share <= MOST_429 and rate >= 0.8 * 50
    return [
        (
            "200/s drops to 50/s 5 s into 3,000 creates: the 10 s after",
            f"{rate / 50:.2f} x 50/s",
            f"{share:.1%}",
            "<= 10% 429, >= 0.8 x 50/s",
            ok,
        )
    ]


async def shape_route() -> list[Row]:
    server = await Server.start(limit={"rate": 50, "burst": 5, "operations": ["create_endpoint"]})
    async with server.client() as fs:
        seconds, _ = await provision(fs, 400, "r", prefetch=False)
    share, _ = await server.share_429()
    await server.stop()
    ratio = 400 / seconds / 50
    return [
        (
            "creates 50/s (burst 5), lookups unlimited, prefetch=False, 400 items",
            f"{ratio:.2f} x create limit",
            f"{share:.1%}",
            ">= 0.8 x create limit, <= 10% 429",
            ratio >= 0.8 and share <= MOST_429,
        )
    ]


SHAPES: dict[str, Callable[[], Awaitable[list[Row]]]] = {
    "a": shape_a,
    "b": shape_b,
    "fixed": shape_fixed,
    "stray": shape_stray,
    "lift": shape_lift,
    "orgs": shape_orgs,
    "drop": shape_drop,
    "route": shape_route,
}


async def main(names: list[str]) -> int:
    rows: list[Row] = []
    for name in names or list(SHAPES):
        rows += await SHAPES[name]()
    print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    print("| Server shape | Throughput | 429 share | Target | Pass |")
    print("|---|---|---|---|---|")
    for shape, figure, share, target, ok in rows:
        print(f"| {shape} | {figure} | {share} | {target} | {'yes' if ok else 'NO'} |")
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve(json.loads(sys.argv[2])))
    else:
        sys.exit(asyncio.run(main(sys.argv[1:])))
