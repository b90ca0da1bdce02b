"""Inbox schema 3 on SQLite and PostgreSQL: the migration, listing, replay and the attempt history.

The migration is tested on inboxes written by the previous schemas (``fixtures/``, made by
``fixtures/make_inbox_fixtures.py``): every row keeps its state, the event type is filled from
the body (a body that is not JSON gets none and never fails the migration), in batches that
let deliveries commit in between and resume after a stop. Listing pages by keyset and stays
stable while new events arrive; replay re-runs done and dead events and leaves pending ones
alone; the history keeps the last 20 runs, scrubbed. The query plans use the indexes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web

from fullstory_async import InvalidArgumentError
from fullstory_async.cli import main
from fullstory_async.receiving import (
    Forwarder,
    ForwardHandler,
    ForwardTarget,
    Inbox,
    InboxError,
    InboxFilter,
    InboxRecord,
    InboxWorker,
    ReplayResult,
    WebhookEvent,
    _postgres,
    _sqlite,
    delivery_key,
    open_inbox,
    signed_delivery,
)
from fullstory_async.receiving import _replaying as replaying
from fullstory_async.receiving._inbox import HISTORY_KEPT, SCHEMA_VERSION
from fullstory_async.testing import ManualClock

FIXTURES = Path(__file__).parent / "fixtures"
ORG = "o-replay"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_inbox_fixtures", FIXTURES / "make_inbox_fixtures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


made = _fixture_script()


async def backfilled(inbox: Inbox) -> None:
    """Wait for the background backfill of this open inbox (none: already done)."""
    if inbox._backfilling is not None:
        await inbox._backfilling


async def restore_fixture(url: str, version: int, tmp_path: Path) -> str:
    """Return an inbox URL holding the schema ``version`` fixture (a copy of the SQLite file, or its SQL run)."""
    if url.startswith("sqlite"):
        path = tmp_path / f"v{version}.db"
        shutil.copy(FIXTURES / f"inbox_v{version}.db", path)
        os.chmod(path, 0o600)
        return f"sqlite:///{path}"
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute((FIXTURES / f"inbox_v{version}.sql").read_text())
    finally:
        await conn.close()
    return url


async def raw_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run a read on the inbox database directly (not through the SDK)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await pg.fetch(sql)]
    finally:
        await pg.close()


@pytest.mark.parametrize("version", [1, 2])
async def test_an_inbox_of_an_older_schema_migrates_keeping_every_row(
    inbox_url: str, tmp_path: Path, version: int
) -> None:
    """Every fixture row keeps its state; event types come from the body; bodies that are not JSON get none."""
    url = await restore_fixture(inbox_url, version, tmp_path)
    with pytest.raises(Exception, match=f"schema version {version}"):  # read-only tools never migrate
        async with open_inbox(url, create=False):
            pass
    async with open_inbox(url) as inbox:
        await backfilled(inbox)
        for (body, status, error), expected in zip(made.ROWS, made.EXPECTED, strict=True):
            entry = await inbox.get(made.key_of(body))
            assert entry is not None
            assert (entry.record.body, entry.record.status, entry.record.last_error) == (body, status, error)
            assert entry.record.event_type == expected
            assert entry.history == ()
        page = await inbox.list(limit=100)
        assert [r.body for r in page.records] == [body for body, _, _ in reversed(made.ROWS)]  # newest first
        assert (await inbox.list(InboxFilter(event_type="note.created"))).records[0].key == made.key_of(made.ROWS[0][0])
    assert await raw_rows(url, "SELECT max(version) FROM fullstory_inbox_schema") == [(SCHEMA_VERSION,)]
    async with open_inbox(url, create=False) as inbox:  # migrated: read-only tools open it now
        assert (await inbox.stats()).pending == 4


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backfill two rows per transaction, so the fixtures take several batches."""
    monkeypatch.setattr(_sqlite, "BACKFILL_BATCH", 2)
    monkeypatch.setattr(_postgres, "BACKFILL_BATCH", 2)


@pytest.mark.usefixtures("small_batches")
async def test_the_backfill_resumes_after_a_stop_and_deliveries_commit_meanwhile(
    inbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after its first batch, the backfill resumes at the next open; deliveries stored meanwhile keep theirs."""
    url = await restore_fixture(inbox_url, 2, tmp_path)
    module = _sqlite if url.startswith("sqlite") else _postgres
    real_batch = module._backfill_batch
    batches = 0
    stalled = threading.Event()

    def first_batch_only(conn: Any) -> Any:
        nonlocal batches
        batches += 1
        if batches > 1:
            stalled.set()
            raise InboxError("stalled")  # as a held lock would: the loop waits and tries again
        return real_batch(conn)

    async def first_batch_only_async(conn: Any) -> Any:
        return await first_batch_only(conn)

    monkeypatch.setattr(module, "_backfill_batch", first_batch_only if module is _sqlite else first_batch_only_async)
    async with open_inbox(url, retention=None) as inbox:  # keep the fixture's old done events
        assert await asyncio.to_thread(stalled.wait, 10)
        body = signed_delivery("note.created", {"id": "during"}, secret="s", org_id=ORG)[0]
        assert await inbox.put(body, org_id=ORG)  # a delivery commits while the backfill is unfinished
        assert await raw_rows(url, "SELECT count(*) FROM fullstory_inbox_backfill") == [(1,)]
    monkeypatch.setattr(module, "_backfill_batch", real_batch)
    async with open_inbox(url, retention=None) as inbox:
        await backfilled(inbox)
        types = {r.key: r.event_type for r in (await inbox.list(limit=100)).records}
    assert types[delivery_key(ORG, body)] == "note.created"
    for (fixture_body, _, _), expected in zip(made.ROWS, made.EXPECTED, strict=True):
        assert types[made.key_of(fixture_body)] == expected
    assert await raw_rows(url, "SELECT count(*) FROM fullstory_inbox WHERE event_type IS NOT NULL") == [(4,)]


async def put_at(inbox: Inbox, clock: ManualClock, name: str, n: int) -> InboxRecord:
    """Store one event of type ``name`` at the clock's time, then move the clock a second on."""
    body = signed_delivery(name, {"id": f"{name}-{n}"}, secret="s", org_id=ORG)[0]
    assert await inbox.put(body, org_id=ORG)
    clock.advance(1)
    entry = await inbox.get(delivery_key(ORG, body))
    assert entry is not None
    return entry.record


async def settle(inbox: Inbox, keys: set[str], outcome: str) -> None:
    """Claim every due event; complete or bury those in ``keys``, give the others back."""
    for record in await inbox.claim(100, lease=60):
        if record.key not in keys:
            await inbox.release(record)
        elif outcome == "done":
            assert await inbox.complete(record)
        else:
            assert await inbox.bury(record, error="gave up")


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


async def test_each_filter_lists_its_events_newest_first(inbox_url: str) -> None:
    """Status, since (inclusive), until (exclusive), event type and key prefix each select exactly their events."""
    clock = ManualClock(T0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        notes = [await put_at(inbox, clock, "note.created", n) for n in range(3)]  # at T0+0, +1, +2
        segments = [await put_at(inbox, clock, "segment.created", n) for n in range(3)]  # +3, +4, +5
        await settle(inbox, {notes[0].key, segments[0].key}, "done")
        await settle(inbox, {notes[1].key}, "dead")

        async def keys(**fields: Any) -> list[str]:
            return [r.key for r in (await inbox.list(InboxFilter(**fields), limit=100)).records]

        newest_first = [r.key for r in reversed(notes + segments)]
        assert await keys() == newest_first
        assert await keys(status="done") == [segments[0].key, notes[0].key]
        assert await keys(status="dead") == [notes[1].key]
        assert await keys(status="pending") == [segments[2].key, segments[1].key, notes[2].key]
        assert await keys(since=at(2)) == newest_first[:4]  # inclusive
        assert await keys(until=at(2)) == newest_first[4:]  # exclusive
        assert await keys(since=at(1), until=at(4)) == [segments[0].key, notes[2].key, notes[1].key]
        assert await keys(event_type="segment.created") == newest_first[:3]
        assert await keys(event_type="segment.created", status="done") == [segments[0].key]
        assert await keys(key=notes[2].key[:8]) == [notes[2].key]
        assert await keys(key=notes[2].key) == [notes[2].key]
        assert await keys(event_type="no.such") == []


async def test_keyset_pages_stay_stable_while_new_events_arrive(inbox_url: str) -> None:
    """Pages after the first neither repeat nor skip an event though newer ones are stored between pages."""
    clock = ManualClock(T0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        old = [await put_at(inbox, clock, "note.created", n) for n in range(7)]
        seen: list[str] = []
        page = await inbox.list(limit=3)
        for round_ in itertools.count():
            seen += [r.key for r in page.records]
            await put_at(inbox, clock, "note.created", 100 + round_)  # newer than everything listed
            if page.next_cursor is None:
                break
            page = await inbox.list(cursor=page.next_cursor, limit=3)
        assert seen == [r.key for r in reversed(old)]
        first = await inbox.list(limit=3)
        assert len(first.records) == 3
        assert first.records[0].received_at > old[-1].received_at  # the new ones head the first page


async def test_events_received_in_the_same_instant_page_by_key(inbox_url: str) -> None:
    """Ties on the received time are broken by key, so no event is lost at a page boundary."""
    clock = ManualClock(T0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        for n in range(5):
            body = signed_delivery("note.created", {"id": n}, secret="s", org_id=ORG)[0]
            await inbox.put(body, org_id=ORG)  # all at T0
        seen: list[str] = []
        cursor = None
        while True:
            page = await inbox.list(cursor=cursor, limit=2)
            seen += [r.key for r in page.records]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == sorted(seen, reverse=True)
        assert len(set(seen)) == 5


async def test_bad_list_arguments_are_refused_naming_them(inbox: Inbox) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^cursor: "):
        await inbox.list(cursor="not-a-cursor")
    with pytest.raises(InvalidArgumentError, match=r"^limit: "):
        await inbox.list(limit=0)
    with pytest.raises(InvalidArgumentError, match=r"^key: "):
        InboxFilter(key="abc")  # shorter than 8
    with pytest.raises(InvalidArgumentError, match=r"^since: "):
        InboxFilter(since=datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidArgumentError, match=r"^key: "):
        await inbox.get("ABC")


async def test_replay_reruns_done_and_dead_events_and_leaves_pending_ones(inbox_url: str) -> None:
    """Done and dead events become pending, due now, attempts reset; pending ones are untouched; history is kept."""
    clock = ManualClock(T0)
    handled: list[str] = []

    async def fails_first(event: WebhookEvent) -> None:
        handled.append(event.delivery_key)
        if handled.count(event.delivery_key) == 1 and event.event_name == "segment.created":
            raise RuntimeError("first run fails")

    async with open_inbox(inbox_url, clock=clock) as inbox:
        note = await put_at(inbox, clock, "note.created", 0)
        segment = await put_at(inbox, clock, "segment.created", 0)
        worker = InboxWorker(inbox, fails_first, max_attempts=1, base_delay=0)
        assert await worker.run_until_idle() == 1  # note done, segment dead
        pending = await put_at(inbox, clock, "note.created", 1)
        with pytest.raises(InvalidArgumentError, match=r"^status: "):
            await inbox.replay(InboxFilter(status="pending"))
        dry = await inbox.replay(InboxFilter(), dry_run=True)
        assert dry == ReplayResult(3, 2, dry_run=True)
        assert [r.status for r in (await inbox.list()).records] == ["pending", "dead", "done"]  # nothing changed
        clock.advance(3600)
        assert await inbox.replay(InboxFilter()) == ReplayResult(3, 2)
        for key in (note.key, segment.key):
            entry = await inbox.get(key)
            assert entry is not None
            assert (entry.record.status, entry.record.attempts) == ("pending", 0)
            assert entry.record.next_attempt_at == clock()
            assert len(entry.history) == 1  # the first series is kept
        untouched = await inbox.get(pending.key)
        assert untouched is not None
        assert untouched.record == pending
        assert await InboxWorker(inbox, fails_first, max_attempts=1).run_until_idle() == 3
        entry = await inbox.get(segment.key)
        assert entry is not None
        assert [(a.attempt, a.outcome) for a in entry.history] == [(1, "dead"), (1, "done")]
        assert entry.history[0].detail == "RuntimeError: first run fails"
        assert entry.history[1].started_at >= T0 + 3600
        assert await inbox.replay(InboxFilter(status="dead")) == ReplayResult(0, 0)


@cache
def colliding_bodies() -> tuple[bytes, bytes]:
    """Two bodies whose delivery keys share their first 8 hex digits (a birthday search, ~100k hashes)."""
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        body = json.dumps({"eventName": "note.created", "n": n}).encode()
        prefix = hashlib.sha256(ORG.encode() + b"\0" + body).hexdigest()[:8]
        if prefix in seen:
            return seen[prefix], body
        seen[prefix] = body
    raise AssertionError  # pragma: no cover


async def test_an_ambiguous_key_prefix_is_refused_naming_the_count(inbox_url: str) -> None:
    first, second = colliding_bodies()
    async with open_inbox(inbox_url) as inbox:
        for body in (first, second):
            await inbox.put(body, org_id=ORG)
        prefix = delivery_key(ORG, first)[:8]
        with pytest.raises(InvalidArgumentError, match=f"^key: the prefix '{prefix}' matches 2 events"):
            await inbox.replay(InboxFilter(key=prefix))
        full, other = delivery_key(ORG, first), delivery_key(ORG, second)
        unique = full[: next(i for i in range(64) if full[i] != other[i]) + 1]
        assert await inbox.replay(InboxFilter(key=unique), dry_run=True) == ReplayResult(1, 0, dry_run=True)
        assert await inbox.replay(InboxFilter(key=full)) == ReplayResult(1, 0)  # pending: matched, not replayed


@pytest.mark.parametrize("kind", ["coroutine", "function"])
async def test_a_handler_s_returned_text_is_kept_in_a_done_run_s_history(tmp_path: Path, kind: str) -> None:
    """A text returned on success is kept, scrubbed and capped; any other value leaves the detail empty."""
    clock = ManualClock(T0)
    said: dict[str, object] = {}

    async def coroutine(event: WebhookEvent) -> object:
        return said[event.delivery_key or ""]

    def function(event: WebhookEvent) -> object:
        return said[event.delivery_key or ""]

    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db", clock=clock) as inbox:
        texts = [await put_at(inbox, clock, "note.created", n) for n in range(3)]
        said.update({texts[0].key: "accepted as job 42", texts[1].key: "posted to https://u:hunter22@h/x" + "y" * 2000})
        said[texts[2].key] = {"not": "text"}
        worker = InboxWorker(inbox, coroutine if kind == "coroutine" else function)
        assert await worker.run_until_idle() == 3
        details = []
        for record in texts:
            entry = await inbox.get(record.key)
            assert entry is not None
            [run] = entry.history
            assert run.outcome == "done"
            details.append(run.detail)
    assert details[0] == "accepted as job 42"
    assert details[1] is not None
    assert details[1].startswith("posted to https://u:***@h/x")
    assert len(details[1]) == 1000
    assert details[2] is None


async def test_the_history_keeps_the_last_20_runs_scrubbed(inbox_url: str) -> None:
    """25 failed runs leave the last 20 in the history, numbered, their errors without the URL password."""
    clock = ManualClock(T0)

    async def leaky(event: WebhookEvent) -> None:
        raise RuntimeError("cannot reach https://svc:hunter22@10.0.0.1/hook?token=abc123xyz")

    async with open_inbox(inbox_url, clock=clock) as inbox:
        record = await put_at(inbox, clock, "note.created", 0)
        worker = InboxWorker(inbox, leaky, max_attempts=25, base_delay=0, max_delay=0)
        await worker.run_until_idle()
        entry = await inbox.get(record.key)
        assert entry is not None
        assert entry.record.status == "dead"
        assert len(entry.history) == HISTORY_KEPT
        assert [a.attempt for a in entry.history] == list(range(6, 26))
        assert [a.outcome for a in entry.history] == ["retry"] * 19 + ["dead"]
        for attempt in entry.history:
            assert attempt.detail is not None
            assert "hunter22" not in attempt.detail
            assert "abc123xyz" not in attempt.detail
            assert "svc:***@10.0.0.1" in attempt.detail
            assert attempt.duration >= 0
        assert entry.record.last_error is not None
        assert "hunter22" not in entry.record.last_error
        line = entry.history[-1].to_json()
        assert line["started_at"].endswith("Z")


# ------------------------------------------------------------------------------------------------ query plans

PLANNED: list[tuple[str, dict[str, Any], str]] = [
    ("newest first", {}, "fullstory_inbox_received"),
    ("status", {"status": "dead"}, "fullstory_inbox_status_received"),
    ("since", {"since": at(0)}, "fullstory_inbox_received"),
    ("until", {"until": at(0)}, "fullstory_inbox_received"),
    ("event type", {"event_type": "note.created"}, "fullstory_inbox_type_received"),
    ("key prefix", {"key": "0123abcd"}, ""),  # the primary key's index
]


@pytest.mark.parametrize(("name", "fields", "index"), PLANNED, ids=[p[0] for p in PLANNED])
@pytest.mark.parametrize("page", ["first", "next"])
async def test_sqlite_query_plans_use_the_indexes(
    tmp_path: Path, name: str, fields: dict[str, Any], index: str, page: str
) -> None:
    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db") as inbox:
        assert isinstance(inbox, _sqlite.SqliteInbox)
        after = (T0, "f" * 64) if page == "next" else None
        sql, values = inbox.page_query(InboxFilter(**fields), after, 50)
    conn = sqlite3.connect(tmp_path / "inbox.db")
    plan = " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", values))
    conn.close()
    assert "SCAN fullstory_inbox" not in plan.replace("USING INDEX", "").replace("USING COVERING INDEX", "") or (
        "USING INDEX" in plan
    ), plan
    assert "SEARCH" in plan or "USING INDEX" in plan, plan
    if index:
        assert f"INDEX {index} " in plan + " ", plan
        assert "TEMP B-TREE" not in plan, plan  # the index gives the order: no sort
    else:
        assert "sqlite_autoindex_fullstory_inbox_1" in plan, plan


@pytest.mark.parametrize(("name", "fields", "index"), PLANNED, ids=[p[0] for p in PLANNED])
@pytest.mark.parametrize("page", ["first", "next"])
async def test_postgres_query_plans_use_the_indexes(
    postgres_url: str, name: str, fields: dict[str, Any], index: str, page: str
) -> None:
    import asyncpg

    async with open_inbox(postgres_url) as inbox:
        assert isinstance(inbox, _postgres.PostgresInbox)
        after = (T0, "f" * 64) if page == "next" else None
        sql, values = inbox.page_query(InboxFilter(**fields), after, 50)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = " | ".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *values))
        await conn.execute("SET enable_sort = off")  # a sort stays only when no index gives the order
        ordered = " | ".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *values))
    finally:
        await conn.close()
    assert "Seq Scan" not in plan, plan
    assert f" {index or 'fullstory_inbox_pkey'} " in plan + " ", plan
    if index:
        assert "Sort" not in ordered, ordered
        assert f"Index Scan Backward using {index} " in ordered, ordered


# ------------------------------------------------------------------------------------------------ the command


def cli(*args: str) -> int:
    return main(["inbox", *args])


@pytest.fixture
def filled(tmp_path: Path) -> str:
    """Return an SQLite inbox with two done events, one dead, one pending, stored an hour ago."""
    url = f"sqlite:///{tmp_path}/inbox.db"

    async def fill() -> None:
        clock = ManualClock(datetime.now(UTC).timestamp() - 3600)  # an hour ago
        async with open_inbox(url, clock=clock) as inbox:
            done = [await put_at(inbox, clock, "note.created", n) for n in range(2)]
            dead = await put_at(inbox, clock, "segment.created", 0)
            await put_at(inbox, clock, "note.created", 9)
            await settle(inbox, {r.key for r in done}, "done")
            await settle(inbox, {dead.key}, "dead")

    asyncio.run(fill())
    return url


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ((), "--all"),
        (("--status", "pending"), "--status"),
        (("--since", "yesterday"), "--since"),
        (("--until", "2026-01-02T03:04:05"), "--until"),  # no offset
        (("--key", "abc"), "--key"),
        (("--key", "zzzzzzzzzz"), "--key"),
    ],
)
def test_replay_usage_errors_exit_2_naming_the_flag(
    filled: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], flag: str
) -> None:
    assert cli("replay", "--inbox", filled, *args) == 2
    captured = capsys.readouterr()
    assert flag in captured.err
    assert captured.out == ""


def test_replay_command_counts_replays_and_prints_json(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run changes nothing; filters combine; --json prints matched and replayed; requeue --dead is an alias."""
    assert cli("replay", "--inbox", filled, "--all", "--dry-run") == 0
    assert capsys.readouterr().out == "would replay 3 of 4 matched (dry run: nothing changed)\n"
    assert cli("replay", "--inbox", filled, "--event-type", "note.created", "--since", "2h", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"matched": 3, "replayed": 2, "dry_run": False}
    assert cli("replay", "--inbox", filled, "--status", "done") == 0
    assert capsys.readouterr().out == "replayed 0 of 0 matched\n"
    assert cli("replay", "--inbox", filled, "--until", "2h", "--all") == 0  # nothing received before 2 h ago
    assert capsys.readouterr().out == "replayed 0 of 0 matched\n"
    assert cli("requeue", "--inbox", filled, "--dead") == 0
    assert capsys.readouterr().out == "replayed 1 of 1 matched\n"
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert cli("replay", "--inbox", filled, "--until", now.isoformat(), "--all") == 0
    assert capsys.readouterr().out == "replayed 0 of 4 matched\n"  # all pending now


def test_more_matches_than_the_threshold_need_yes(
    filled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replaying, "CONFIRM_ABOVE", 2)
    assert cli("replay", "--inbox", filled, "--all") == 2
    assert "--yes" in capsys.readouterr().err
    assert cli("replay", "--inbox", filled, "--all", "--dry-run") == 0  # a dry run needs no confirmation
    capsys.readouterr()
    assert cli("replay", "--inbox", filled, "--all", "--yes") == 0
    assert capsys.readouterr().out == "replayed 3 of 4 matched\n"


def test_an_ambiguous_key_prefix_exits_2_with_the_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    first, second = colliding_bodies()

    async def fill() -> None:
        async with open_inbox(url) as inbox:
            for body in (first, second):
                await inbox.put(body, org_id=ORG)

    asyncio.run(fill())
    prefix = delivery_key(ORG, first)[:8]
    assert cli("replay", "--inbox", url, "--key", prefix.upper(), "--dry-run") == 2
    assert f"--key: the prefix '{prefix}' matches 2 events" in capsys.readouterr().err
    assert cli("replay", "--inbox", url, "--key", delivery_key(ORG, first), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"matched": 1, "replayed": 0, "dry_run": False}


def test_replay_never_creates_nor_migrates_an_inbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.db"
    assert cli("replay", "--inbox", f"sqlite:///{missing}", "--all") == 1
    assert not missing.exists()
    old = tmp_path / "v2.db"
    shutil.copy(FIXTURES / "inbox_v2.db", old)
    os.chmod(old, 0o600)
    assert cli("replay", "--inbox", f"sqlite:///{old}", "--all") == 1
    assert "schema version 2" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(old)) as conn:  # closed: Python 3.13 warns of an unclosed one
        assert conn.execute("SELECT max(version) FROM fullstory_inbox_schema").fetchone() == (2,)


async def test_a_postgres_migration_may_outlast_the_commit_timeout(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Index builds on a large inbox take longer than a delivery's commit bound: the migration still completes."""
    url = await restore_fixture(postgres_url, 2, tmp_path)
    slow = {**_postgres._MIGRATIONS, 3: ("SELECT pg_sleep(0.6)", *_postgres._MIGRATIONS[3])}
    monkeypatch.setattr(_postgres, "_MIGRATIONS", slow)
    async with open_inbox(url, commit_timeout=0.3) as inbox:
        await backfilled(inbox)
        entry = await inbox.get(made.key_of(made.ROWS[0][0]))
        assert entry is not None
        assert entry.record.event_type == "note.created"
    assert await raw_rows(url, "SELECT max(version) FROM fullstory_inbox_schema") == [(SCHEMA_VERSION,)]


async def test_a_forward_run_keeps_the_status_and_a_scrubbed_excerpt(tmp_path: Path) -> None:
    """A service answering 503 (echoing the signing secret) then 204: the history has both runs, the secret scrubbed."""
    secret = "whsec_" + base64.b64encode(b"replay-history-test-key-32-bytes").decode()
    answers = [(503, f"overloaded; your key is {secret}"), (204, "")]

    async def service(request: web.Request) -> web.Response:
        status, text = answers.pop(0)
        return web.Response(status=status, text=text)

    app = web.Application()
    app.router.add_post("/events", service)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    clock = ManualClock(T0)
    try:
        async with open_inbox(f"sqlite:///{tmp_path}/inbox.db", clock=clock) as inbox:
            record = await put_at(inbox, clock, "note.created", 0)
            target = ForwardTarget(f"http://127.0.0.1:{port}/events", timeout=2)
            async with Forwarder(target, secret=secret) as forwarder:
                worker = InboxWorker(inbox, ForwardHandler(forwarder), max_attempts=3)
                assert await worker.run_until_idle() == 0
                clock.advance(60)
                assert await worker.run_until_idle() == 1
            entry = await inbox.get(record.key)
    finally:
        await runner.cleanup()
    assert entry is not None
    [first, second] = entry.history
    assert (first.attempt, first.outcome, second.attempt, second.outcome) == (1, "retry", 2, "done")
    assert first.detail is not None
    assert first.detail.startswith("503")
    assert secret.removeprefix("whsec_") not in first.detail
    assert second.detail == "204"  # a successful forward keeps the service's status
