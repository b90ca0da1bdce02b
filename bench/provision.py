"""Bulk provisioning benchmarks (issue 5 targets), against FakeFullstory on 127.0.0.1.

    python bench/provision.py rate     # 5,000 endpoints under a 200/s token bucket (burst 20)
    python bench/provision.py faults   # the same job with 10% injected faults of every kind
    python bench/provision.py memory   # 100,000 items streamed through provision: peak RSS

Each prints one JSON line of figures and exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

from fullstory_async import Client, CreateEndpointRequest, Outcome, RetryPolicy
from fullstory_async.testing import FakeFullstory, Fault, RateLimit

RATE = 200.0
BURST = 20
N = 5_000


def requests(n: int, prefix: str = "bench") -> Iterator[CreateEndpointRequest]:
    for i in range(n):
        yield CreateEndpointRequest(
            url=f"https://example.com/{prefix}/{i}", event_types=["note.created"], secret=f"secret-{i}"
        )


async def run_job(fs: Client, n: int, concurrency: int) -> tuple[Counter[str], list[float], int]:
    """Provision n endpoints; return outcomes, completion times and the number of results."""
    outcomes: Counter[str] = Counter()
    done_at: list[float] = []
    seen: set[int] = set()
    async for result in fs.webhooks.provision(requests(n), concurrency=concurrency):
        outcomes[result.outcome.value] += 1
        done_at.append(time.perf_counter())
        seen.add(result.index)
    return outcomes, done_at, len(seen)


def sustained_rate(done_at: list[float], skip: float = 0.2) -> float:
    """Completions per second after the first ``skip`` fraction (the warm-up)."""
    start = int(len(done_at) * skip)
    span = done_at[-1] - done_at[start]
    return (len(done_at) - 1 - start) / span if span > 0 else float("inf")


async def bench_rate(faults: bool) -> dict[str, object]:
    limit = RateLimit(rate=RATE, burst=BURST)
    async with FakeFullstory(rate_limit=limit, seed=42, request_log_size=4 * N) as fake:
        if faults:
            # 10% of requests fault, spread over every kind the fake has (a fixed seed).
            faults = Fault.every_kind(slow=3.0)  # the client's timeout is 2 s
            for fault in faults:
                fake.faults.add(fault, probability=0.1 / len(faults))
        retry = RetryPolicy(max_attempts=10, operation_timeout=300)
        async with fake.client(retry=retry, timeout=2.0) as fs:
            started = time.perf_counter()
            outcomes, done_at, distinct = await run_job(fs, N, concurrency=32)
            elapsed = time.perf_counter() - started
            governor = repr(fs.governor)
        await asyncio.sleep(3.5 if faults else 0)  # requests the fake is still delaying finish
        statuses = Counter(entry.status for entry in fake.requests)
        total = sum(statuses.values())
        urls = Counter(endpoint.url for endpoint in fake.endpoints.values())
        return {
            "bench": "faults" if faults else "rate",
            "items": N,
            "results": len(done_at),
            "distinct_results": distinct,
            "outcomes": dict(outcomes),
            "endpoints": len(fake.endpoints),
            "duplicates": sum(count - 1 for count in urls.values() if count > 1),
            "elapsed_s": round(elapsed, 2),
            "requests": total,
            "requests_429": statuses.get(429, 0),
            "share_429": round(statuses.get(429, 0) / total, 4),
            "overall_requests_per_s": round(total / elapsed, 1),
            "sustained_creates_per_s": round(sustained_rate(done_at), 1),
            "governor": governor,
        }


def check_rate(figures: dict[str, object]) -> list[str]:
    missed = []
    if float(figures["sustained_creates_per_s"]) < 0.9 * RATE:  # type: ignore[arg-type]
        missed.append("sustained throughput below 0.9 x R")
    if float(figures["share_429"]) > 0.05:  # type: ignore[arg-type]
        missed.append("more than 5% of requests answered 429")
    return missed


def check_faults(figures: dict[str, object]) -> list[str]:
    missed = []
    if figures["endpoints"] != N or figures["duplicates"] != 0:
        missed.append("not exactly N endpoints without duplicates")
    if figures["results"] != N or figures["distinct_results"] != N:
        missed.append("not one result per input")
    return missed


def bench_memory(n: int) -> dict[str, object]:
    """Stream n items through provision against a fake in another process; report this process's peak RSS."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fullstory_async.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        env = dict(line.strip().split("=", 1) for line in (server.stdout.readline() for _ in range(3)))

        async def job() -> tuple[Counter[str], float]:
            client = Client(env["FULLSTORY_API_KEY"], base_url=env["FULLSTORY_BASE_URL"])
            async with client as fs:
                started = time.perf_counter()
                outcomes: Counter[str] = Counter()
                async for result in fs.webhooks.provision(requests(n, "memory"), concurrency=32):
                    outcomes[result.outcome.value] += 1
                return outcomes, time.perf_counter() - started

        outcomes, elapsed = asyncio.run(job())
    finally:
        server.terminate()
        server.wait(timeout=10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bench": "memory",
        "items": n,
        "outcomes": dict(outcomes),
        "elapsed_s": round(elapsed, 1),
        "items_per_s": round(n / elapsed, 1),
        "client_peak_rss_mb": round(peak_mb, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("rate", "faults", "memory"))
    parser.add_argument("--items", type=int, default=100_000, help="items for the memory benchmark")
    args = parser.parse_args()
    if args.which == "memory":
        figures = bench_memory(args.items)
        ok = Outcome.CREATED.value in figures["outcomes"] and sum(figures["outcomes"].values()) == args.items  # type: ignore[attr-defined]
        missed = [] if ok and float(figures["client_peak_rss_mb"]) < 150 else ["peak RSS >= 150 MB or items lost"]  # type: ignore[arg-type]
    else:
        figures = asyncio.run(bench_rate(faults=args.which == "faults"))
        missed = check_faults(figures) if args.which == "faults" else check_rate(figures)
    figures["python"] = sys.version.split()[0]
    figures["cpus"] = os.cpu_count()
    figures["missed"] = missed
    print(json.dumps(figures))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
