"""Forwarded events per second, and the time from the receiver's 202 to arrival at the service (issue 21).

    python bench/forward.py             # both phases
    python bench/forward.py --quick     # fewer events

Phase 1, throughput: an SQLite inbox seeded with ``EVENTS`` deliveries; ``fullstory-async
forward`` (its own process, default options: concurrency 16) sends them to a local service
answering 204 (in this process, verifying every signature); the rate is events over the time
from the banner to the last arrival. Target: at least 1,000 events/s on 2 cores.

Phase 2, latency: ``fullstory-async receive --forward-to`` (receiver and forwarder in one
process) gets signed deliveries at ``RATE``/s from 20 concurrent senders; for each, the time
from its 202 to its arrival at the service (matched by ``webhook-id``, the inbox key). Printed:
p50, p99 and max. Prints one JSON line per phase; exits non-zero when phase 1 misses its target.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import sys
import tempfile
import time

from aiohttp import ClientSession, TCPConnector, web

from fullstory_async.receiving import delivery_key, open_inbox, signed_delivery, verify_forwarded

SIGN_SECRET = "whsec_" + base64.b64encode(b"bench-forward-signing-key-32byte").decode()
SECRET = "bench-secret-F0rw4rd"
ORG = "o-BENCH-na1"
TARGET = 1_000.0


def delivery(n: int, tag: str) -> tuple[bytes, dict[str, str]]:
    return signed_delivery("note.created", {"id": f"{tag}-{n}", "text": "x" * 200}, secret=SECRET, org_id=ORG)


class Service:
    """The internal service: verifies each forwarded delivery and records when it arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.expected = 0
        self.done = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        key = verify_forwarded(await request.read(), request.headers, SIGN_SECRET)
        self.arrived.setdefault(key, time.perf_counter())
        if len(self.arrived) >= self.expected:
            self.done.set()
        return web.Response(status=204)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/events"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def command(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "FS_BENCH_SIGN": SIGN_SECRET, "FS_BENCH_SECRET": SECRET}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fullstory_async", *args, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    banner = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
    return process, banner


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), 60)


async def throughput(folder: str, events: int) -> dict[str, object]:
    url = f"sqlite:///{folder}/throughput.db"
    async with open_inbox(url) as inbox:
        for n in range(events):
            await inbox.put(delivery(n, "t")[0], org_id=ORG)
    service = Service()
    service.expected = events
    target = await service.start()
    try:
        process, _banner = await command(
            "forward", "--inbox", url, "--to", target, "--sign-secret-env", "FS_BENCH_SIGN"
        )
        started = time.perf_counter()
        try:
            await asyncio.wait_for(service.done.wait(), 600)
            elapsed = time.perf_counter() - started
        finally:
            await stop(process)
    finally:
        await service.stop()
    rate = events / elapsed
    return {
        "phase": "throughput",
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(rate),
        "target_per_s": TARGET,
        "met": rate >= TARGET,
    }


async def latency(folder: str, events: int, rate: float) -> dict[str, object]:
    url = f"sqlite:///{folder}/latency.db"
    service = Service()
    service.expected = events
    target = await service.start()
    acked: dict[str, float] = {}
    try:
        process, banner = await command(
            "receive",
            "--inbox",
            url,
            "--secret-env",
            "FS_BENCH_SECRET",
            "--port",
            "0",
            "--forward-to",
            target,
            "--sign-secret-env",
            "FS_BENCH_SIGN",
        )
        receiver = banner.split()[2]
        try:
            async with ClientSession(connector=TCPConnector(limit=20)) as session:
                start = time.perf_counter()

                async def send(n: int) -> None:
                    await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                    data, headers = delivery(n, "l")
                    async with session.post(receiver, data=data, headers=headers) as answer:
                        assert answer.status == 202, answer.status
                    acked[delivery_key(ORG, data)] = time.perf_counter()

                await asyncio.gather(*(send(n) for n in range(events)))
            await asyncio.wait_for(service.done.wait(), 120)
        finally:
            await stop(process)
    finally:
        await service.stop()
    waits = sorted(max(0.0, service.arrived[key] - at) * 1000 for key, at in acked.items())
    return {
        "phase": "latency",
        "events": events,
        "rate_per_s": rate,
        "p50_ms": round(statistics.median(waits), 1),
        "p99_ms": round(waits[int(len(waits) * 0.99) - 1], 1),
        "max_ms": round(waits[-1], 1),
    }


async def main(quick: bool) -> int:
    with tempfile.TemporaryDirectory() as folder:
        first = await throughput(folder, 3_000 if quick else 20_000)
        print(json.dumps(first), flush=True)
        second = await latency(folder, 500 if quick else 3_000, 200.0)
        print(json.dumps(second), flush=True)
    return 0 if first["met"] else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
