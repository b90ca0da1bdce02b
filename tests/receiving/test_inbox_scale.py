"""The inbox at scale, without timing anything: query plans and a replay that never holds the write lock long.

The timings of these queries on 1,000,000 events are ``bench/inbox_queries.py``; here the plans
are asserted on small tables (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN`` with
``enable_seqscan`` off): every list page, replay batch, count and the stats are served by an
index, in its order (no sort), and the counts read the index alone (covering, index-only).
A replay of a large set runs in short batches while deliveries are stored and a worker runs:
every delivery commits, each matched event is replayed and handled exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fullstory_async.receiving import (
    InboxFilter,
    InboxWorker,
    ReplayResult,
    WebhookEvent,
    _inbox,
    delivery_key,
    open_inbox,
    signed_delivery,
)
from fullstory_async.receiving._query import Params, counts_sql, page_sql, replay_batch_sql, stats_sql

ORG = "o-SCALE-na1"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
AT = datetime.fromtimestamp(T0, UTC)
FILTERS: list[tuple[str, dict[str, Any], str]] = [  # each filter, and the index that serves it in list order
    ("newest first", {}, "fullstory_inbox_received"),
    ("status", {"status": "dead"}, "fullstory_inbox_status_received"),
    ("since", {"since": AT}, "fullstory_inbox_received"),
    ("until", {"until": AT}, "fullstory_inbox_received"),
    ("event type", {"event_type": "note.created"}, "fullstory_inbox_type_received"),
    ("key prefix", {"key": "0123abcd"}, ""),  # the primary key's index
    ("status and since", {"status": "done", "since": AT}, "fullstory_inbox_status_received"),
    ("event type and until", {"event_type": "note.created", "until": AT}, "fullstory_inbox_type_received"),
]
IDS = [name for name, _, _ in FILTERS]


def counted(fields: dict[str, Any]) -> list[InboxFilter]:
    """Return the filters a dry run of `Inbox.replay` counts: the filter, and its pending events without a status."""
    filters = InboxFilter(**fields)
    return [filters] if filters.status else [filters, InboxFilter(**{**fields, "status": "pending"})]


def statements(style: str, fields: dict[str, Any]) -> dict[str, tuple[str, list[object]]]:
    """Return the ordered statements of a filter: a list page and a replay batch, first and next."""
    found = {}
    for page in ("first", "next"):
        after = (T0, "f" * 64) if page == "next" else None
        params = Params(style)
        found[f"page ({page})"] = (page_sql(_inbox.COLUMNS, InboxFilter(**fields), after, 50, params), params.values)
        params = Params(style)
        found[f"replay batch ({page})"] = (replay_batch_sql(InboxFilter(**fields), after, 50, params), params.values)
    return found


def stats_statements(style: str) -> list[tuple[str, list[object]]]:
    """Return the statements of `Inbox.stats`: the capped counts, and the oldest pending event."""
    params = Params(style)
    counts = stats_sql(_inbox.STATS_CAP, params)
    return [(counts, params.values), ("SELECT min(received_at) FROM fullstory_inbox WHERE status = 'pending'", [])]


# ------------------------------------------------------------------------------------------------ SQLite plans


def sqlite_plan(path: Path, sql: str, values: list[object]) -> str:
    conn = sqlite3.connect(path)
    try:
        return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", values))
    finally:
        conn.close()


async def sqlite_inbox(tmp_path: Path) -> Path:
    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db"):
        pass
    return tmp_path / "inbox.db"


@pytest.mark.parametrize(("name", "fields", "index"), FILTERS, ids=IDS)
async def test_sqlite_pages_and_replay_batches_walk_an_index_in_order(
    tmp_path: Path, name: str, fields: dict[str, Any], index: str
) -> None:
    path = await sqlite_inbox(tmp_path)
    for what, (sql, values) in statements("?", fields).items():
        plan = sqlite_plan(path, sql, values)
        assert f"INDEX {index or 'sqlite_autoindex_fullstory_inbox_1'} " in plan + " ", (what, plan)
        if index:  # a key prefix is a few rows, sorted
            assert "TEMP B-TREE" not in plan, (what, plan)  # the index gives the order: no sort


@pytest.mark.parametrize(("name", "fields", "index"), FILTERS, ids=IDS)
async def test_sqlite_replay_counts_read_a_covering_index(
    tmp_path: Path, name: str, fields: dict[str, Any], index: str
) -> None:
    path = await sqlite_inbox(tmp_path)
    params = Params("?")
    plan = sqlite_plan(path, counts_sql(counted(fields), params), params.values)
    for line in plan.split(" | "):
        if "fullstory_inbox" in line:
            assert "INDEX" in line, plan  # never the table itself
            if "key" not in fields:  # a key prefix is a few rows: the primary key's index, then the row
                assert "COVERING INDEX" in line, plan


async def test_sqlite_stats_read_covering_indexes(tmp_path: Path) -> None:
    path = await sqlite_inbox(tmp_path)
    for sql, values in stats_statements("?"):
        plan = sqlite_plan(path, sql, values)
        for line in plan.split(" | "):
            if "fullstory_inbox" in line:
                assert "COVERING INDEX" in line, plan
                assert "(status=?)" in line, plan  # a range of the index, not the whole of it


# ------------------------------------------------------------------------------------------------ PostgreSQL plans


async def postgres_plans(url: str, queries: list[tuple[str, list[object]]], *, rows: int = 0) -> list[tuple[str, str]]:
    """EXPLAIN each query with seq scans off (plain, then with sorts off too) on the emptied inbox.

    With ``rows``, the inbox holds that many `mixed_rows`, vacuumed and analysed as autovacuum
    keeps a table (statistics, and the visibility map an index-only scan needs).
    """
    import asyncpg

    await store_directly(url, mixed_rows(rows))
    conn = await asyncpg.connect(url)
    try:
        if rows:
            await conn.execute("VACUUM ANALYZE fullstory_inbox")
        plans = []
        for sql, values in queries:
            await conn.execute("SET enable_seqscan = off")
            await conn.execute("RESET enable_sort")
            plan = " | ".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *values))
            await conn.execute("SET enable_sort = off")  # a sort stays only when no index gives the order
            ordered = " | ".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *values))
            plans.append((plan, ordered))
        return plans
    finally:
        await conn.close()


@pytest.mark.parametrize(("name", "fields", "index"), FILTERS, ids=IDS)
async def test_postgres_pages_and_replay_batches_walk_an_index_in_order(
    postgres_url: str, name: str, fields: dict[str, Any], index: str
) -> None:
    found = statements("$", fields)
    for what, (plan, ordered) in zip(found, await postgres_plans(postgres_url, list(found.values())), strict=True):
        assert "Seq Scan" not in plan, (what, plan)
        assert f" {index or 'fullstory_inbox_pkey'} " in plan + " ", (what, plan)
        if index:
            assert "Sort" not in ordered, (what, ordered)
            assert re.search(f"Index (Only )?Scan Backward using {index} ", ordered), (what, ordered)


@pytest.mark.parametrize(("name", "fields", "index"), FILTERS, ids=IDS)
async def test_postgres_replay_counts_read_the_index_alone(
    postgres_url: str, name: str, fields: dict[str, Any], index: str
) -> None:
    params = Params("$")
    [(plan, _)] = await postgres_plans(postgres_url, [(counts_sql(counted(fields), params), params.values)], rows=5_000)
    assert "Seq Scan" not in plan, plan
    assert "Bitmap Heap Scan" not in plan, plan
    if "key" not in fields:  # a key prefix is a few rows: the primary key's index, then the row
        assert plan.count("Index Only Scan") == len(counted(fields)), plan
        assert "Index Scan " not in plan, plan


async def test_postgres_stats_read_the_indexes_alone(postgres_url: str) -> None:
    plans = await postgres_plans(postgres_url, stats_statements("$"), rows=5_000)
    for plan, _ in plans:
        assert "Seq Scan" not in plan, plan
        assert "Bitmap Heap Scan" not in plan, plan
        assert "Index Only Scan" in plan, plan
        assert re.search(r"Index Cond: \(+status = ", plan), plan  # a range of the index, not the whole of it


# ------------------------------------------------------------------------------------------------ batched replay

EVENTS = 2_000
BATCH = 20


def stored_rows(count: int, received: float) -> list[tuple[Any, ...]]:
    """``count`` done events (every tenth dead) received a second apart, ending at ``received``."""
    rows = []
    for n in range(count):
        body = json.dumps({"eventName": "note.created", "version": 1, "data": {"id": f"n-{n}"}}).encode()
        at = received - count + n
        status = "dead" if n % 10 == 0 else "done"
        rows.append((delivery_key(ORG, body), ORG, body, at, status, 1, at, at + 0.5, "note.created"))
    return rows


def mixed_rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` events of four types, 90% done, 5% dead, 5% pending, received a second apart around `T0`."""
    types = ("note.created", "segment.created", "metric.alert", "recording.event.custom")
    rows = []
    for n in range(count):
        body = json.dumps({"eventName": types[n % 4], "version": 1, "data": {"id": f"m-{n}"}}).encode()
        at = T0 - count / 2 + n
        status = ("dead", "pending")[n % 20] if n % 20 < 2 else "done"
        rows.append((delivery_key(ORG, body), ORG, body, at, status, 1, at, at + 0.5, types[n % 4]))
    return rows


async def store_directly(url: str, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert rows into the inbox's table (a fast fixture: `Inbox.put` would take seconds)."""
    columns = ("key", "org_id", "body", "received_at", "status", "attempts", "next_attempt_at", "processed_at")
    columns += ("event_type",)
    async with open_inbox(url):  # creates the schema
        pass
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.executemany(f"INSERT INTO fullstory_inbox ({', '.join(columns)}) VALUES ({', '.join('?' * 9)})", rows)
        conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        await pg.copy_records_to_table("fullstory_inbox", records=rows, columns=columns)
    finally:
        await pg.close()


async def test_a_large_replay_runs_in_short_batches_while_deliveries_commit_and_a_worker_runs(
    inbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 done and dead events replayed 20 per transaction, while deliveries arrive and a worker handles events.

    Deliveries commit and the worker handles replayed events before the replay ends (one long
    transaction would hold both back until it commits); every put commits within the commit
    timeout; the replay counts each match once; every event is handled exactly once (none
    replayed twice, none lost).
    """
    monkeypatch.setattr(_inbox, "REPLAY_BATCH", BATCH)
    start = time.time()
    rows = stored_rows(EVENTS, start - 60)
    await store_directly(inbox_url, rows)
    handled: collections.Counter[str] = collections.Counter()
    replay_ended: asyncio.Event = asyncio.Event()
    first_handled = asyncio.Event()
    during: list[str] = []  # deliveries put after the first replayed event was handled, committed before the end

    async def handle(event: WebhookEvent) -> None:
        assert event.delivery_key is not None
        handled[event.delivery_key] += 1
        first_handled.set()

    async with open_inbox(inbox_url, retention=None, commit_timeout=1.0) as inbox:
        worker = InboxWorker(inbox, handle, concurrency=16, poll_interval=0.01, base_delay=0)
        working = asyncio.create_task(worker.run())

        async def deliver() -> list[str]:
            keys = []
            for n in range(100_000):
                if replay_ended.is_set() and len(keys) >= 20:
                    return keys
                body, _ = signed_delivery("note.created", {"id": f"live-{n}"}, secret="s", org_id=ORG)
                after_first = first_handled.is_set()
                assert await inbox.put(body, org_id=ORG)  # an InboxError here: a put waited past commit_timeout
                keys.append(delivery_key(ORG, body))
                if after_first and not replay_ended.is_set():
                    during.append(keys[-1])
                await asyncio.sleep(0)
            raise AssertionError("the replay never ended")  # pragma: no cover

        delivering = asyncio.create_task(deliver())
        result = await inbox.replay(InboxFilter(until=datetime.fromtimestamp(start, UTC)))
        handled_during = sum(handled[row[0]] for row in rows)
        replay_ended.set()
        live = await delivering
        await worker.stop()
        await working
        await worker.run_until_idle()  # what the running worker had not reached yet
        stats = await inbox.stats()

    assert result == ReplayResult(EVENTS, EVENTS)
    assert handled_during > 0, "no replayed event was handled before the replay ended: one long transaction?"
    assert during, "no delivery committed between the replay's batches: one long transaction?"
    assert handled == collections.Counter({row[0]: 1 for row in rows} | dict.fromkeys(live, 1))
    assert (stats.pending, stats.done, stats.dead) == (0, EVENTS + len(live), 0)


# ------------------------------------------------------------------------------------------------ capped stats


async def test_stats_count_each_state_up_to_the_cap(inbox_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts below the cap are exact; one that reaches it reads the cap, flagged, and counts no further."""
    monkeypatch.setattr(_inbox, "STATS_CAP", 50)
    await store_directly(inbox_url, mixed_rows(1_000))  # 900 done, 50 dead, 50 pending
    async with open_inbox(inbox_url, retention=None) as inbox:
        capped = await inbox.stats()
        monkeypatch.setattr(_inbox, "STATS_CAP", 51)
        exact_small = await inbox.stats()
    assert (capped.pending, capped.done, capped.dead, capped.capped) == (50, 50, 50, True)
    assert (exact_small.pending, exact_small.done, exact_small.dead, exact_small.capped) == (50, 51, 50, True)
    monkeypatch.setattr(_inbox, "STATS_CAP", 100_000)
    async with open_inbox(inbox_url, retention=None) as inbox:
        exact = await inbox.stats()
    assert (exact.pending, exact.done, exact.dead, exact.capped) == (50, 900, 50, False)
    assert exact.oldest_pending_at == T0 - 500 + 1
