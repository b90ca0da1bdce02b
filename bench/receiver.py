"""Durable acknowledgements per second: ``fullstory-async receive`` against a hand-written receiver (issue 13).

    python bench/receiver.py                   # measure (each receiver runs in its own process)
    python bench/receiver.py --serve-baseline  # the hand-written receiver alone

The baseline is the least durable work a correct receiver can do, all of it on the event
loop: aiohttp, verify the HMAC-SHA256 signature, ``INSERT OR IGNORE`` the body in
autocommit into SQLite (WAL, ``synchronous=NORMAL``), answer 202. The SDK is the
``fullstory-async receive`` command on a SQLite inbox (same durability: WAL, NORMAL), which
also parses the envelope, derives the delivery key and commits off the loop before it
answers. One client process sends signed deliveries from 50 concurrent senders; each round
uses fresh bodies and a fresh database and runs both receivers back to back (the order
alternates), so the drift of a shared machine hits both alike; the ratio is the median of the
per-round ratios, the figures those of the median round. Prints one JSON line (acks/s, p50/p99
acknowledgement latency); exits non-zero when the SDK reaches less than 0.8 x the baseline's
throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

SECRET = "bench-secret-R4nd0m"
ORG = "o-BENCH-na1"
CONCURRENCY = 50
DELIVERIES = 3_000
ROUNDS = 7
TARGET = 0.8


def serve_baseline(db_path: str) -> None:
    from aiohttp import web

    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS inbox (key TEXT PRIMARY KEY, body BLOB NOT NULL)")
    key = SECRET.encode()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        parts = dict(part.split(":", 1) for part in request.headers.get("Fullstory-Signature", "").split(","))
        mac = hmac.new(key, body + f":{parts.get('o', '')}:{parts.get('t', '')}".encode(), hashlib.sha256)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), parts.get("v", "")):
            return web.Response(status=401)
        conn.execute("INSERT OR IGNORE INTO inbox VALUES (?, ?)", (hashlib.sha256(body).hexdigest(), body))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", receive)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(f"receiving on http://127.0.0.1:{runner.addresses[0][1]}/", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def start(kind: str, directory: str, round_no: int) -> tuple[subprocess.Popen[str], str]:
    db = os.path.join(directory, f"{kind}-{round_no}.db")
    if kind == "baseline":
        command = [sys.executable, __file__, "--serve-baseline", db]
    else:
        command = [sys.executable, "-m", "fullstory_async", "receive", "--inbox", f"sqlite:///{db}"]
        command += ["--secret-env", "BENCH_SECRET", "--port", "0"]
    env = {**os.environ, "BENCH_SECRET": SECRET}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    return process, process.stdout.readline().split()[2]


async def load(url: str, round_no: int) -> dict[str, float]:
    import aiohttp

    from fullstory_async.receiving import signed_delivery

    items = [
        signed_delivery("note.created", {"id": f"r{round_no}-{n}", "text": "x" * 200}, secret=SECRET, org_id=ORG)
        for n in range(DELIVERIES)
    ]
    latencies: list[float] = []
    pending = iter(items)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            for body, headers in pending:
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 202, response.status
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "acks_per_s": round(DELIVERIES / elapsed),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
    }


def measure() -> int:
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as directory:
        for round_no in range(ROUNDS):
            figures: dict[str, dict[str, float]] = {}
            for kind in ("baseline", "sdk") if round_no % 2 == 0 else ("sdk", "baseline"):
                process, url = start(kind, directory, round_no)
                try:
                    figures[kind] = asyncio.run(load(url, round_no))
                finally:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
            rounds.append(figures)
    rounds.sort(key=lambda r: r["sdk"]["acks_per_s"] / r["baseline"]["acks_per_s"])
    median = rounds[len(rounds) // 2]
    ratio = median["sdk"]["acks_per_s"] / median["baseline"]["acks_per_s"]
    result = {
        "bench": "receiver",
        "concurrency": CONCURRENCY,
        "deliveries": DELIVERIES,
        "rounds": ROUNDS,
        "baseline": median["baseline"],
        "sdk": median["sdk"],
        "ratio": round(ratio, 3),
        "ratios": [round(r["sdk"]["acks_per_s"] / r["baseline"]["acks_per_s"], 3) for r in rounds],
        "target": f">= {TARGET}",
    }
    print(json.dumps(result))
    return 0 if ratio >= TARGET else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve-baseline", metavar="DB", help="serve the hand-written receiver on DB")
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    return measure()


if __name__ == "__main__":
    sys.exit(main())
