"""The inbox API at scale: each query on 1,000,000 stored events, SQLite and PostgreSQL (issue 21).

    python bench/inbox_queries.py                        # both engines, 1,000,000 events
    python bench/inbox_queries.py --engine sqlite --events 100000

Each engine gets a fresh inbox seeded by `_seed.seed_inbox` (bodies about 300 bytes, six
event types, 90% done, 5% dead, 5% pending, spread over 7 days). PostgreSQL: a scratch
database on the server of ``FULLSTORY_TEST_POSTGRES_DSN`` (or a throwaway server), dropped
at the end. Then, through the public API (`open_inbox`), each call is timed ``--runs`` times
and its median printed beside the target, 200 ms: the first page of `Inbox.list`, the first
page under each single filter (each status, ``since``, ``until``, an event type, a key
prefix, a cursor 90% deep in the list), `Inbox.get`, `Inbox.stats` and the counts of
``replay(dry_run=True)`` (no filter, and each status). Then every dead event (50,000) is
replayed while deliveries are stored one after another: the slowest delivery, target 200 ms
(a replay runs in short batches; one transaction would hold every delivery). Memory: the RSS growth while paging
through ``PAGES`` pages of 100 (after ``PAGES`` pages of warm-up), target at most 8 MiB.
Prints one JSON line per engine; exits non-zero when a figure misses its target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from _seed import seed_inbox

from fullstory_async.receiving import Inbox, InboxFilter, open_inbox, signed_delivery

TARGET_MS = 200.0
PAGES = 300
RSS_TARGET_MIB = 8.0


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.asynccontextmanager
async def postgres_url(directory: str) -> AsyncIterator[str]:
    """A scratch database (dropped at the end) on the server of FULLSTORY_TEST_POSTGRES_DSN, or a throwaway one."""
    import asyncpg
    from receiver_soak import throwaway_server

    dsn, stop = os.environ.get("FULLSTORY_TEST_POSTGRES_DSN"), None
    if not dsn:
        dsn, stop = await asyncio.to_thread(throwaway_server, directory)
    name = f"fs_inbox_bench_{os.getpid()}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if stop is not None:
            await asyncio.to_thread(stop)


async def median_ms(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(url: str, events: int, runs: int) -> dict[str, Any]:
    start = time.perf_counter()
    counts = await seed_inbox(url, events)
    seeded = time.perf_counter() - start
    async with open_inbox(url, retention=None, commit_timeout=30.0) as inbox:
        newest = (await inbox.list(limit=1)).records[0]
        now = datetime.fromtimestamp(newest.received_at, UTC)
        dead = (await inbox.list(InboxFilter(status="dead"), limit=1)).records[0]
        # a cursor 90% into the list (newest first): the position of the newest event of the oldest 10%
        deep = InboxFilter(until=now - timedelta(days=7 * 0.9))
        deep_cursor = (await inbox.list(deep, limit=1)).next_cursor
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "list first page": lambda: inbox.list(),
            "list status=pending": lambda: inbox.list(InboxFilter(status="pending")),
            "list status=done": lambda: inbox.list(InboxFilter(status="done")),
            "list status=dead": lambda: inbox.list(InboxFilter(status="dead")),
            "list since=1h": lambda: inbox.list(InboxFilter(since=now - timedelta(hours=1))),
            "list until=6d ago": lambda: inbox.list(InboxFilter(until=now - timedelta(days=6))),
            "list event_type=metric.alert": lambda: inbox.list(InboxFilter(event_type="metric.alert")),
            "list event_type=nativemobile.event.crash": lambda: inbox.list(
                InboxFilter(event_type="nativemobile.event.crash")
            ),
            "list key prefix (8)": lambda: inbox.list(InboxFilter(key=dead.key[:8])),
            "list cursor 90% deep": lambda: inbox.list(cursor=deep_cursor),
            "list status=dead + cursor 90% deep": lambda: inbox.list(InboxFilter(status="dead"), cursor=deep_cursor),
            "get (with history)": lambda: inbox.get(dead.key),
            "stats": inbox.stats,
            "replay dry-run, no filter": lambda: inbox.replay(InboxFilter(), dry_run=True),
            "replay dry-run status=done": lambda: inbox.replay(InboxFilter(status="done"), dry_run=True),
            "replay dry-run status=dead": lambda: inbox.replay(InboxFilter(status="dead"), dry_run=True),
            "replay dry-run since=1d": lambda: inbox.replay(InboxFilter(since=now - timedelta(days=1)), dry_run=True),
            "replay dry-run event_type=metric.alert": lambda: inbox.replay(
                InboxFilter(event_type="metric.alert"), dry_run=True
            ),
        }
        figures = {}
        for name, call in calls.items():
            figures[name] = round(await median_ms(call, runs), 1)
            verdict = "ok" if figures[name] <= TARGET_MS else "MISSED"
            print(f"  {name:<44} {figures[name]:8.1f} ms  (target <= {TARGET_MS:g} ms)  {verdict}", flush=True)

        async def page_through(pages: int, cursor: str | None) -> str | None:
            for _ in range(pages):
                page = await inbox.list(cursor=cursor, limit=100)
                cursor = page.next_cursor
            return cursor

        replay = await replay_while_delivering(inbox)
        cursor = await page_through(PAGES, None)  # warm-up: caches, pools, allocator
        before = rss_mib()
        await page_through(PAGES, cursor)
        growth = round(rss_mib() - before, 1)
        verdict = "ok" if growth <= RSS_TARGET_MIB else "MISSED"
        print(
            f"  {'RSS growth over ' + str(PAGES) + ' pages of 100':<44} {growth:8.1f} MiB (target <= 8 MiB)  {verdict}"
        )
    return {
        "seeded": counts._asdict(),
        "seed_seconds": round(seeded, 1),
        "ms": figures,
        "replay": replay,
        "rss_growth_mib": growth,
    }


async def replay_while_delivering(inbox: Inbox) -> dict[str, Any]:
    """Replay every dead event (5% of the inbox) while deliveries are stored one after another; time both."""
    latencies: list[float] = []
    stop = asyncio.Event()

    async def deliver() -> None:
        n = 0
        while not stop.is_set():
            body, _ = signed_delivery("note.created", {"id": f"live-{n}"}, secret="bench", org_id="o-1A2B3C-na1")
            started = time.perf_counter()
            await inbox.put(body, org_id="o-1A2B3C-na1")
            latencies.append((time.perf_counter() - started) * 1000)
            n += 1

    delivering = asyncio.create_task(deliver())
    started = time.perf_counter()
    result = await inbox.replay(InboxFilter(status="dead"))
    seconds = time.perf_counter() - started
    stop.set()
    await delivering
    worst = max(latencies)
    verdict = "ok" if worst <= TARGET_MS else "MISSED"
    print(
        f"  replay of {result.replayed:,} dead events: {seconds:.1f} s, {len(latencies):,} deliveries stored meanwhile"
    )
    print(f"  {'slowest delivery during the replay':<44} {worst:8.1f} ms  (target <= {TARGET_MS:g} ms)  {verdict}")
    return {
        "replayed": result.replayed,
        "seconds": round(seconds, 1),
        "deliveries": len(latencies),
        "put_p50_ms": round(statistics.median(latencies), 1),
        "put_max_ms": round(worst, 1),
    }


async def run(engines: list[str], events: int, runs: int) -> int:
    missed = 0
    with tempfile.TemporaryDirectory() as directory:
        for engine in engines:
            print(f"{engine}: seeding {events:,} events (load: {os.getloadavg()[0]:.2f})", flush=True)
            if engine == "sqlite":
                result = await measure(f"sqlite:///{directory}/inbox.db", events, runs)
            else:
                async with postgres_url(directory) as url:
                    result = await measure(url, events, runs)
            missed += sum(ms > TARGET_MS for ms in result["ms"].values()) + (result["rss_growth_mib"] > RSS_TARGET_MIB)
            missed += result["replay"]["put_max_ms"] > TARGET_MS
            load = os.getloadavg()[0]
            print(json.dumps({"engine": engine, "events": events, "runs": runs, "load": round(load, 2), **result}))
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="timings per call (the median is printed)")
    args = parser.parse_args(argv)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    return asyncio.run(run(engines, args.events, args.runs))


if __name__ == "__main__":
    sys.exit(main())
