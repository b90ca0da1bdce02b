"""Seed an inbox with many realistic stored events, fast (the inbox benchmarks' fixture).

::

    import sys; sys.path.insert(0, "bench")  # a script in bench/ has it on its path already
    from _seed import seed_inbox

    counts = await seed_inbox(url, 1_000_000)

``async seed_inbox(url: str, count: int, *, days: float = 7.0, now: float | None = None,
random_seed: int = 21) -> SeedCounts``

- ``url``: an inbox URL as `open_inbox` takes it (``sqlite:///path.db``, ``postgresql://...``).
  The schema is created or migrated by the project's own code (`open_inbox`); the inbox must
  hold no event yet (else `ValueError`, nothing written).
- ``count`` events: Fullstory envelopes ``{"eventName", "version", "data"}`` of six event
  types (``note.created``, ``recording.event.custom``, ``segment.trend.alert``,
  ``metric.alert``, ``segment.created``, ``nativemobile.event.crash``), bodies of 240 to 370
  bytes (median 300), stored under their real delivery key (`delivery_key`) with their ``event_type``.
- Received times spread evenly over the ``days`` before ``now`` (default: this machine's
  clock). Statuses: about 90% ``done``, 5% ``dead`` (12 attempts, an HTTP error), 5%
  ``pending`` (half due now, half waiting for a retry, with an error).
- Attempt history: three runs for each dead event, one for each pending event that failed
  once, one for every tenth done event.
- Deterministic for a given ``random_seed``. Returns the counts written (`SeedCounts`).

Rows are generated in chunks of `CHUNK` and bulk inserted (SQLite: ``executemany`` in one
transaction with ``synchronous=OFF``; PostgreSQL: ``COPY``), the secondary indexes dropped
first and rebuilt after by the schema's own statements (a sort, not a million B-tree
inserts), then ``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE``, as its autovacuum does after
many inserts). 1,000,000 events: about 30 s on SQLite, 45 s on PostgreSQL (2 cores).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from fullstory_async.receiving import delivery_key, open_inbox
from fullstory_async.receiving._inbox import SCHEMA_VERSION, migrations

CHUNK = 50_000
"""Events generated and inserted at a time (bounds the seeder's memory)."""

ORG = "o-1A2B3C-na1"
TYPES = (  # eventName, share of events
    ("note.created", 0.40),
    ("recording.event.custom", 0.30),
    ("segment.trend.alert", 0.15),
    ("metric.alert", 0.08),
    ("segment.created", 0.05),
    ("nativemobile.event.crash", 0.02),
)
_COLUMNS = (
    "key",
    "org_id",
    "body",
    "signed_at",
    "received_at",
    "status",
    "attempts",
    "next_attempt_at",
    "processed_at",
    "last_error",
    "traceparent",
    "event_type",
)
_ATTEMPT_COLUMNS = ("key", "attempt", "started_at", "duration", "outcome", "detail")
_ERRORS = (
    "HTTP 503 from the service: upstream unavailable",
    "HTTP 500 from the service: internal error",
    "cannot connect to the service: Connection refused",
    "the service did not answer within 10 s",
)


class SeedCounts(NamedTuple):
    """What `seed_inbox` wrote."""

    pending: int
    done: int
    dead: int
    attempts: int
    """Rows of attempt history."""


def _indexes() -> list[tuple[str, str]]:
    """Return (name, CREATE statement) of every secondary index of the events table, from the schema."""
    found = []
    for version in range(1, SCHEMA_VERSION + 1):
        for statement in migrations(blob="BLOB", real="REAL", serial="INTEGER PRIMARY KEY")[version]:
            if statement.startswith("CREATE INDEX") and " ON fullstory_inbox (" in statement:
                found.append((statement.split()[2], statement))
    return found


def _data(kind: str, n: int, at: float, rng: random.Random) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    user = f"https://app.fullstory.com/ui/{ORG}/user/{rng.randrange(10**12):012d}"
    if kind == "note.created":
        return {
            "id": f"note-{n:010d}",
            "created": stamp,
            "author": f"analyst{n % 97}@example.com",
            "text": "Checkout button did not respond"[: 10 + n % 22],
            "sessionUrl": f"{user}/session/{n:016x}",
            "pageInfo": {"pageUrl": f"https://shop.example.com/cart/{n % 1000}", "country": "US"},
        }
    if kind == "recording.event.custom":
        return {
            "id": f"evt-{n:010d}",
            "name": ("Added Item to Cart", "Checkout Started", "Signed Up")[n % 3],
            "timestamp": stamp,
            "properties": {"sku": f"SKU-{n % 5000:05d}", "price": round(rng.uniform(1, 500), 2)},
            "userUrl": user,
        }
    if kind == "segment.trend.alert":
        return {
            "id": f"alert-{n:010d}",
            "timestamp": stamp,
            "value": rng.randrange(50, 5000),
            "notificationUrl": f"https://app.fullstory.com/ui/{ORG}/segments/s{n % 40}",
            "alertConfig": {"description": "Rage clicks above threshold", "threshold": 100},
        }
    if kind == "metric.alert":
        return {
            "id": f"metric-{n:010d}",
            "timestamp": stamp,
            "metricName": "Checkout conversion",
            "value": round(rng.uniform(0, 1), 4),
            "alertConfig": {"description": "Conversion dropped", "threshold": 0.25},
        }
    if kind == "segment.created":
        return {
            "id": f"seg-{n:010d}",
            "creator": f"owner{n % 13}@example.com",
            "name": f"Visitors from campaign {n % 300}",
            "url": f"https://app.fullstory.com/ui/{ORG}/segments/seg-{n:010d}",
            "created": stamp,
        }
    return {
        "id": f"crash-{n:010d}",
        "timestamp": stamp,
        "appName": "Shop iOS",
        "appVersion": f"4.{n % 20}.{n % 7}",
        "exception": "NSInvalidArgumentException: unrecognized selector sent to instance",
        "deviceUrl": user,
    }


def _chunks(count: int, start: float, span: float, random_seed: int) -> Iterator[tuple[list[tuple[Any, ...]], ...]]:
    """Yield (events, attempts) rows, `CHUNK` events at a time, oldest first."""
    rng = random.Random(random_seed)
    names = [name for name, _ in TYPES]
    weights = [share for _, share in TYPES]
    step = span / max(count, 1)
    for first in range(0, count, CHUNK):
        events: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        for n in range(first, min(first + CHUNK, count)):
            at = start + n * step + rng.random() * step
            kind = rng.choices(names, weights)[0]
            body = json.dumps({"eventName": kind, "version": 1, "data": _data(kind, n, at, rng)}).encode()
            key = delivery_key(ORG, body)
            roll = rng.random()
            signed = at - rng.random()
            if roll < 0.05:  # dead: out of attempts
                error = rng.choice(_ERRORS)
                events.append((key, ORG, body, signed, at, "dead", 12, at + 3600, at + 3600, error, None, kind))
                attempts += [(key, a, at + a * 60, 0.2, "retry", error) for a in (10, 11)]
                attempts.append((key, 12, at + 3600, 0.2, "dead", error))
            elif roll < 0.075:  # pending, due now
                events.append((key, ORG, body, signed, at, "pending", 0, at, None, None, None, kind))
            elif roll < 0.10:  # pending, waiting for a retry
                error = rng.choice(_ERRORS)
                events.append((key, ORG, body, signed, at, "pending", 1, at + 300, None, error, None, kind))
                attempts.append((key, 1, at + 0.01, 0.3, "retry", error))
            else:  # done
                done_at = at + 0.05
                events.append((key, ORG, body, signed, at, "done", 1, at, done_at, None, None, kind))
                if n % 10 == 0:
                    attempts.append((key, 1, at + 0.01, 0.04, "done", "204"))
        yield events, attempts


def _tally(counts: dict[str, int], events: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]]) -> None:
    for row in events:
        counts[row[5]] += 1
    counts["attempts"] += len(attempts)


async def seed_inbox(
    url: str, count: int, *, days: float = 7.0, now: float | None = None, random_seed: int = 21
) -> SeedCounts:
    """Store ``count`` realistic events in the empty inbox at ``url`` (see the module's docstring)."""
    if count < 0 or days <= 0:
        raise ValueError(f"count must be >= 0 and days > 0, got {count!r} and {days!r}")
    async with open_inbox(url, retention=None, commit_timeout=60.0) as inbox:  # creates or migrates the schema
        if (await inbox.list(limit=1)).records:
            raise ValueError("the inbox already holds events: seed an empty one")
    end = time.time() if now is None else now
    span = days * 86400.0
    chunks = _chunks(count, end - span, span, random_seed)
    counts = {"pending": 0, "done": 0, "dead": 0, "attempts": 0}
    if url.partition(":")[0].lower() == "sqlite":
        _seed_sqlite(urlsplit(url).path[1:], chunks, counts)
    else:
        await _seed_postgres(url, chunks, counts)
    return SeedCounts(counts["pending"], counts["done"], counts["dead"], counts["attempts"])


def _seed_sqlite(path: str, chunks: Iterator[tuple[list[tuple[Any, ...]], ...]], counts: dict[str, int]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB for the index builds
        conn.execute("BEGIN IMMEDIATE")
        indexes = _indexes()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        marks = ", ".join("?" * len(_COLUMNS))
        insert = f"INSERT INTO fullstory_inbox ({', '.join(_COLUMNS)}) VALUES ({marks})"
        history = f"INSERT INTO fullstory_inbox_attempts ({', '.join(_ATTEMPT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)"
        for events, attempts in chunks:
            conn.executemany(insert, events)
            conn.executemany(history, attempts)
            _tally(counts, events, attempts)
        for _, statement in indexes:
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def _seed_postgres(url: str, chunks: Iterator[tuple[list[tuple[Any, ...]], ...]], counts: dict[str, int]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        async with conn.transaction():
            indexes = _indexes()
            for name, _ in indexes:
                await conn.execute(f"DROP INDEX {name}")
            for events, attempts in chunks:
                await conn.copy_records_to_table("fullstory_inbox", records=events, columns=_COLUMNS)
                await conn.copy_records_to_table("fullstory_inbox_attempts", records=attempts, columns=_ATTEMPT_COLUMNS)
                _tally(counts, events, attempts)
            for _, statement in indexes:
                await conn.execute(statement)
        # as autovacuum soon does after so many inserts: statistics, and the visibility map index-only scans need
        await conn.execute("VACUUM ANALYZE fullstory_inbox")
        await conn.execute("VACUUM ANALYZE fullstory_inbox_attempts")
    finally:
        await conn.close()
