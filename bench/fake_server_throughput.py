"""How fast and how big is FakeFullstory? Memory per endpoint, seeding time, requests per second.

    python bench/fake_server_throughput.py [--endpoints 100000] [--seconds 3] [--concurrency 32]

The fake runs in its own process (``python -m fullstory_async.testing``) so the load
generator (aiohttp, in this process) does not share its CPU core. Reported throughput is
what one fake process answered; the client side may be the bottleneck on small machines.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import aiohttp

from fullstory_async.testing import FakeFullstory


def seed(fake: FakeFullstory, count: int) -> None:
    for i in range(count):
        fake.add_endpoint(f"https://hooks.example.com/fullstory/tenant-{i:06d}", secret=f"secret-{i:06d}-xxxxxxxx")


def measure_memory(count: int) -> None:
    started = time.perf_counter()
    seed(FakeFullstory(request_log_size=0), count)
    elapsed = time.perf_counter() - started
    print(f"seeding: {count:,} add_endpoint calls in {elapsed:.2f} s ({count / elapsed:,.0f}/s)")
    gc.collect()
    tracemalloc.start()
    fake = FakeFullstory(request_log_size=0)
    base, _ = tracemalloc.get_traced_memory()
    seed(fake, count)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per = (used - base) / count
    print(f"memory: {count:,} endpoints = {(used - base) / 2**20:.1f} MiB ({per:.0f} B/endpoint, tracemalloc)")


async def start_server(endpoints: int, log_size: int) -> tuple[asyncio.subprocess.Process, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fullstory_async.testing",
        "--port",
        "0",
        "--endpoints",
        str(endpoints),
        "--request-log-size",
        str(log_size),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines = [(await process.stdout.readline()).decode().strip() for _ in range(3)]
    settings = dict(line.split("=", 1) for line in lines)
    return process, settings["FULLSTORY_BASE_URL"], settings["FULLSTORY_API_KEY"]


async def run_load(name: str, seconds: float, concurrency: int, make_call: Callable[[int], Awaitable[int]]) -> None:
    done = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker(worker_id: int) -> None:
        nonlocal done
        n = worker_id
        while time.perf_counter() < deadline:
            status = await make_call(n)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            n += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(f"{name:<34} {done / elapsed:>8,.0f} req/s   statuses {dict(sorted(statuses.items()))}")


async def measure_throughput(endpoints: int, seconds: float, concurrency: int, log_size: int) -> None:
    process, url, key = await start_server(endpoints, log_size)
    headers = {"Authorization": f"Basic {key}"}
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
            from fullstory_async.testing import endpoint_id

            ids = [endpoint_id(f"https://example.com/hooks/{i}") for i in range(max(endpoints, 1))]

            async def get_one(n: int) -> int:
                async with session.get(f"/webhooks/v1/endpoints/{ids[n % len(ids)]}") as r:
                    await r.read()
                    return r.status

            async def event_types(n: int) -> int:
                async with session.get("/webhooks/v1/event-types") as r:
                    await r.read()
                    return r.status

            async def create(n: int) -> int:
                body = {"url": f"https://bench.example.com/{n}", "eventTypes": [{"eventName": "note.created"}]}
                async with session.post("/webhooks/v1/endpoints", json=body) as r:
                    await r.read()
                    return r.status

            token: dict[int, str | None] = {}

            async def list_pages(n: int) -> int:
                params = {"limit": "100"}
                if token.get(n % concurrency):
                    params["paginationToken"] = token[n % concurrency] or ""
                async with session.get("/webhooks/v1/endpoints", params=params) as r:
                    body = await r.json()
                    token[n % concurrency] = body.get("nextPaginationToken")
                    return r.status

            await run_load("GET endpoint (by id)", seconds, concurrency, get_one)
            await run_load("GET event-types", seconds, concurrency, event_types)
            await run_load("POST create endpoint", seconds, concurrency, create)
            await run_load("GET list, pages of 100 (walking)", seconds, concurrency, list_pages)
    finally:
        process.terminate()
        await process.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"server process: max RSS {usage.ru_maxrss / 1024:.0f} MiB, CPU {usage.ru_utime + usage.ru_stime:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--request-log-size", type=int, default=1000, help="the fake's request log (0 = off)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    measure_memory(args.endpoints)
    print(f"request log size {args.request_log_size}")
    asyncio.run(measure_throughput(args.endpoints, args.seconds, args.concurrency, args.request_log_size))


if __name__ == "__main__":
    main()
