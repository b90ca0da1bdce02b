"""Client CPU cost per create: the SDK against raw aiohttp and raw httpx, and import time (issue 7).

    python bench/overhead.py            # measure (starts the loopback server in another process)
    python bench/overhead.py --serve 0  # the server alone

The server answers every ``POST /webhooks/v1/endpoints`` with the documented example
endpoint, as fast as aiohttp can. Each client does the same POST with a JSON body and
decodes the JSON answer; the SDK also validates, encodes, runs its middleware (auth, retry,
governor, error decoding) and builds an ``Endpoint``. The figure is client process CPU
seconds (user + system) per successful call, at concurrency 1 and 64. Prints one JSON line;
exits non-zero when the SDK costs more than 1.25 x raw aiohttp or imports in more than
1.3 x aiohttp's import time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

ENDPOINT = {
    "id": "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M",
    "created": "2020-04-01T21:53:58.200Z",
    "modified": "2020-04-01T21:53:58.200Z",
    "enabled": True,
    "url": "https://example.com/fullstory-webhooks",
    "eventTypes": [{"eventName": "note.created"}],
}
BODY = {"url": "https://example.com/fullstory-webhooks", "eventTypes": [{"eventName": "note.created"}], "secret": "s"}
KEY = "na1.overhead-bench-key/ORG"
CALLS = {1: 2_000, 64: 6_000}
ROUNDS = 7


def serve(port: int) -> None:
    from aiohttp import web

    payload = json.dumps(ENDPOINT).encode()

    async def create(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhooks/v1/endpoints", create)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def drive(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    """Make ``calls`` calls at ``concurrency``; return client CPU seconds per call."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    for _ in range(20):  # warm the pool and caches
        await call()
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) / calls


async def sdk(base: str, calls: int, concurrency: int) -> float:
    from fullstory_async import Client, CreateEndpointRequest

    request = CreateEndpointRequest(
        url="https://example.com/fullstory-webhooks", event_types=["note.created"], secret="s"
    )
    async with Client(KEY, base_url=base, max_connections=concurrency) as fs:
        return await drive(lambda: fs.webhooks.create_endpoint(request), calls, concurrency)


async def raw_aiohttp(base: str, calls: int, concurrency: int) -> float:
    import aiohttp

    headers = {"Authorization": f"Basic {KEY}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> object:
            async with session.post(base + "/webhooks/v1/endpoints", json=BODY, headers=headers) as response:
                response.raise_for_status()
                return await response.json()

        return await drive(call, calls, concurrency)


async def raw_httpx(base: str, calls: int, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Basic {KEY}", "Accept": "application/json"}
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:

        async def call() -> object:
            response = await client.post(base + "/webhooks/v1/endpoints", json=BODY)
            response.raise_for_status()
            return response.json()

        return await drive(call, calls, concurrency)


def import_time(module: str) -> float:
    """Median wall seconds of ``import module`` in a fresh interpreter."""
    times = []
    for _ in range(7):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help="only run the loopback server")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    server = subprocess.Popen([sys.executable, __file__, "--serve", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        figures: dict[str, object] = {"bench": "overhead", "rounds": ROUNDS}
        for concurrency, calls in CALLS.items():
            # Interleave SDK and aiohttp rounds and take the median of the per-round ratios, so
            # that the drift of a shared machine hits both alike.
            sdk_costs, aiohttp_costs = [], []
            for _ in range(ROUNDS):
                aiohttp_costs.append(asyncio.run(raw_aiohttp(base, calls, concurrency)))
                sdk_costs.append(asyncio.run(sdk(base, calls, concurrency)))
            httpx_cost = min(asyncio.run(raw_httpx(base, calls // 4, concurrency)) for _ in range(2))
            ratios = [s / a for s, a in zip(sdk_costs, aiohttp_costs, strict=True)]
            figures[f"sdk_c{concurrency}_us_cpu_per_call"] = round(statistics.median(sdk_costs) * 1e6, 1)
            figures[f"aiohttp_c{concurrency}_us_cpu_per_call"] = round(statistics.median(aiohttp_costs) * 1e6, 1)
            figures[f"httpx_c{concurrency}_us_cpu_per_call"] = round(httpx_cost * 1e6, 1)
            figures[f"sdk_over_aiohttp_c{concurrency}"] = round(statistics.median(ratios), 3)
    finally:
        server.terminate()
        server.wait(timeout=10)
    figures["import_fullstory_async_ms"] = round(import_time("fullstory_async") * 1000, 1)
    figures["import_aiohttp_ms"] = round(import_time("aiohttp") * 1000, 1)
    figures["import_ratio"] = round(figures["import_fullstory_async_ms"] / figures["import_aiohttp_ms"], 3)  # type: ignore[operator]
    missed = [
        name
        for name, limit in (("sdk_over_aiohttp_c1", 1.25), ("sdk_over_aiohttp_c64", 1.25), ("import_ratio", 1.3))
        if float(figures[name]) > limit  # type: ignore[arg-type]
    ]
    figures["missed"] = missed
    print(json.dumps(figures))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
