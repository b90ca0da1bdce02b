"""The inbox console's first page over 1,000,000 stored events: at most 300 ms (issue 22).

    python bench/console.py                      # SQLite, and PostgreSQL when FULLSTORY_TEST_POSTGRES_DSN is set
    python bench/console.py --postgres DSN       # PostgreSQL on that server (a scratch database, dropped after)
    python bench/console.py --events 100000      # a smaller inbox
    python bench/console.py --inbox URL          # an inbox seeded already (bench/_seed.py), as it is

Seeds an inbox with ``--events`` realistic events (bodies of about 300 bytes, six event types,
90% done / 5% dead / 5% pending, spread over a week: ``bench/_seed.py``), starts the real
``fullstory-async inbox serve`` process on it (127.0.0.1, port 0) and times, from a client on
one keep-alive connection, the first page of the list (``GET /`` and ``GET /api/deliveries``,
50 rows), the next page, the first page of some filters and the page of one delivery (and,
without a target, the activity page and the exact counts of ``/api/stats``): the median of
`REQUESTS` requests each, after one untimed request (the first, cold figure is printed
beside it). Prints each figure beside its target, one JSON line per engine at the end, and
exits non-zero when a median misses `TARGET_MS`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from _seed import seed_inbox  # bench/ is on the path of a script run from it
from receiver_soak import admin, with_database

TARGET_MS = 300.0
UNTARGETED = ("/activity", "/api/stats")
"""Pages timed for the record only: a day of activity and the exact counts (a scan, not a page of the list)."""
REQUESTS = 15
EVENTS = 1_000_000
START_TIMEOUT = 120.0  # opening a large inbox may run its checks first
_URL_LINE = re.compile(r"console at (https?)://\S+?:(\d+)/")


def paths(key: str, cursor: str) -> dict[str, str]:
    """Return the pages timed (label: path): the first page of the list, the next, some filters, one delivery."""
    return {
        "/": "/",
        "/api/deliveries": "/api/deliveries",
        "/?cursor=(page 2)": f"/?cursor={cursor}",
        "/?until=6d": "/?until=6d",
        "/?status=dead": "/?status=dead",
        "/?event_type=metric.alert": "/?event_type=metric.alert",
        "/?status=pending&event_type=segment.created": "/?status=pending&event_type=segment.created",
        "/api/deliveries?status=dead&event_type=nativemobile.event.crash": (
            "/api/deliveries?status=dead&event_type=nativemobile.event.crash"
        ),
        "/deliveries/{key}": f"/deliveries/{key}",
        **{path: path for path in UNTARGETED},
    }


@contextlib.contextmanager
def console(inbox_url: str) -> Iterator[str]:
    """Run ``fullstory-async inbox serve`` on the inbox; yield its base URL; stop it."""
    command = [sys.executable, "-m", "fullstory_async", "inbox", "serve", "--inbox", inbox_url, "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT
        for line in process.stderr:
            found = _URL_LINE.search(line)
            if found:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the console printed no URL")
        else:
            raise RuntimeError(f"the console exited ({process.wait()}) before printing its URL")
        yield f"127.0.0.1:{found.group(2)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def timed(address: str, path: str) -> tuple[float, list[float], int]:
    """Return the first request's milliseconds, those of `REQUESTS` more (one keep-alive connection), rows shown."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        times = []
        for _ in range(REQUESTS + 1):
            start = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
        rows = len(json.loads(body).get("deliveries", ())) if path.startswith("/api/") else body.count(b"<tr data-key=")
        return times[0], times[1:], rows
    finally:
        conn.close()


def first_page(address: str) -> tuple[str, str]:
    """Return the newest delivery's key and the cursor of the second page."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", "/api/deliveries")
        page = json.loads(conn.getresponse().read())
        return str(page["deliveries"][0]["key"]), str(page["next_cursor"])
    finally:
        conn.close()


def measure(engine: str, inbox_url: str, events: int | None) -> bool:
    """Seed (unless ``events`` is None), serve, time every page; print the figures; True when all meet the target."""
    if events is not None:
        started = time.monotonic()
        counts = asyncio.run(seed_inbox(inbox_url, events))
        print(f"[{engine}] seeded {events:,} events in {time.monotonic() - started:.0f} s: {counts}", flush=True)
    figures = {}
    with console(inbox_url) as address:
        for label, path in paths(*first_page(address)).items():
            cold, warm, rows = timed(address, path)
            median = statistics.median(warm)
            if path in UNTARGETED:
                print(f"[{engine}] GET {label:<52}           median {median:6.1f} ms (no target)", flush=True)
                continue
            if rows == 0 and not path.startswith("/deliveries/"):
                raise RuntimeError(f"GET {path} showed no delivery: nothing was measured")
            figures[label] = round(median, 1)
            verdict = "ok" if median <= TARGET_MS else "MISSED"
            print(
                f"[{engine}] GET {label[:52]:<52} {rows:3} rows: median {median:6.1f} ms (target <= {TARGET_MS:.0f} ms)"
                f", first {cold:6.1f} ms, max {max(warm):6.1f} ms  {verdict}",
                flush=True,
            )
    print(json.dumps({"engine": engine, "events": events, "target_ms": TARGET_MS, "median_ms": figures}))
    return all(median <= TARGET_MS for median in figures.values())


@contextlib.contextmanager
def scratch_database(dsn: str) -> Iterator[str]:
    """A database of our own on the server of ``dsn`` (nothing of the server's touched); dropped at the end."""
    name = f"fs_console_bench_{os.getpid()}_{random.randrange(10**6)}"
    asyncio.run(admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(dsn, name)
    finally:
        asyncio.run(admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS, help=f"events to store (default {EVENTS:,})")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FULLSTORY_TEST_POSTGRES_DSN"),
        help="a PostgreSQL server's DSN (default: FULLSTORY_TEST_POSTGRES_DSN; none: SQLite only)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--inbox", help="measure this inbox as it is (seeded already: nothing written)")
    args = parser.parse_args()
    if args.inbox:
        return 0 if measure(args.inbox.partition(":")[0], args.inbox, None) else 1
    ok = True
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as directory:
            ok &= measure("sqlite", f"sqlite:///{directory}/inbox.db", args.events)
    if args.postgres:
        with scratch_database(args.postgres) as url:
            ok &= measure("postgres", url, args.events)
    else:
        print("[postgres] skipped: no --postgres and no FULLSTORY_TEST_POSTGRES_DSN")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
