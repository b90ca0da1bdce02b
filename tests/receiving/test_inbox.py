"""The inbox on both engines: stored once per key, claims, leases, retries, dead letters, retention, schema."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from fullstory_async import InvalidArgumentError
from fullstory_async.receiving import InboxError, delivery_key, open_inbox, signed_delivery
from fullstory_async.receiving._inbox import NEVER_FINISHED
from fullstory_async.testing import ManualClock

ORG = "o-1A2B3C-na1"


def body(n: int) -> bytes:
    return signed_delivery("note.created", {"id": f"n-{n}"}, secret="s", org_id=ORG)[0]


async def test_a_delivery_is_stored_once_per_key_even_when_put_concurrently(inbox_url: str) -> None:
    """100 concurrent puts of 20 bodies store 20 events; exactly one put per body reports it new."""
    async with open_inbox(inbox_url) as inbox:
        results = await asyncio.gather(*(inbox.put(body(n % 20), org_id=ORG) for n in range(100)))
        assert sum(results) == 20
        stats = await inbox.stats()
        assert (stats.pending, stats.done, stats.dead) == (20, 0, 0)


async def test_the_key_is_org_and_body_not_the_signature_timestamp(inbox_url: str) -> None:
    """The same body re-signed later is a duplicate; the same body for another org is not."""
    first = signed_delivery("test", {}, secret="s", org_id=ORG, timestamp=1_700_000_000)
    later = signed_delivery("test", {}, secret="s", org_id=ORG, timestamp=1_700_000_999)
    assert first[0] == later[0]
    assert first[1] != later[1]
    async with open_inbox(inbox_url) as inbox:
        assert await inbox.put(first[0], org_id=ORG, signed_at=1_700_000_000)
        assert not await inbox.put(later[0], org_id=ORG, signed_at=1_700_000_999)
        assert await inbox.put(first[0], org_id="o-OTHER-na1")
        keys = [record.key async for record in inbox.export()]
    assert sorted(keys) == sorted([delivery_key(ORG, first[0]), delivery_key("o-OTHER-na1", first[0])])


async def test_stored_events_survive_reopening(inbox_url: str) -> None:
    """What put returned for is there after the inbox is closed and opened again."""
    async with open_inbox(inbox_url) as inbox:
        for n in range(5):
            await inbox.put(body(n), org_id=ORG)
    async with open_inbox(inbox_url) as inbox:
        assert [r.body async for r in inbox.export()] == [body(n) for n in range(5)]


async def test_claims_are_exclusive_until_the_lease_ends(inbox_url: str) -> None:
    """A claimed event is not claimed again within its lease; after it, it is, with one more attempt."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        for n in range(3):
            clock.advance(1)
            await inbox.put(body(n), org_id=ORG)
        first = await inbox.claim(2, lease=60)
        assert [r.body for r in first] == [body(0), body(1)]
        assert [r.attempts for r in first] == [1, 1]
        assert [r.body for r in await inbox.claim(5, lease=60)] == [body(2)]
        assert await inbox.claim(5, lease=60) == []
        clock.advance(61)  # the claiming worker died: its events come back
        again = await inbox.claim(5, lease=60)
        assert sorted(r.body for r in again) == sorted(body(n) for n in range(3))
        assert {r.attempts for r in again} == {2}


async def test_concurrent_claims_never_hand_out_an_event_twice(inbox_url: str) -> None:
    """Ten claimers racing over 50 events get each event exactly once."""
    async with open_inbox(inbox_url) as inbox:
        await asyncio.gather(*(inbox.put(body(n), org_id=ORG) for n in range(50)))
        batches = await asyncio.gather(*(inbox.claim(7, lease=60) for _ in range(10)))
    keys = [r.key for batch in batches for r in batch]
    assert len(keys) == len(set(keys)) == 50


async def test_retry_bury_complete_and_requeue(inbox_url: str) -> None:
    """Retry delays an event, bury makes it dead, requeue_dead brings it back with attempts reset."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await inbox.put(body(1), org_id=ORG)
        await inbox.put(body(2), org_id=ORG)
        one, two = await inbox.claim(2, lease=60)
        await inbox.retry(one, error="boom", delay=10)
        await inbox.bury(two, error="gave up")
        clock.advance(9)
        assert await inbox.claim(5, lease=60) == []
        clock.advance(1)
        [again] = await inbox.claim(5, lease=60)
        assert (again.key, again.attempts, again.last_error) == (one.key, 2, "boom")
        await inbox.complete(again)
        stats = await inbox.stats()
        assert (stats.pending, stats.done, stats.dead) == (0, 1, 1)
        assert await inbox.requeue_dead() == 1
        [back] = await inbox.claim(5, lease=60)
        assert (back.key, back.attempts, back.status) == (two.key, 1, "pending")


async def test_outcomes_apply_only_under_the_claim_that_took_the_event(inbox_url: str) -> None:
    """After a lease ran out and the event was claimed again, the old claim's complete/retry/bury change nothing."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await inbox.put(body(1), org_id=ORG)
        [stale] = await inbox.claim(1, lease=60)
        clock.advance(61)
        [fresh] = await inbox.claim(1, lease=60)
        assert fresh.next_attempt_at != stale.next_attempt_at
        assert not await inbox.bury(stale, error="late")
        assert not await inbox.retry(stale, error="late", delay=0)
        assert not await inbox.complete(stale)
        assert await inbox.complete(fresh)
        assert not await inbox.bury(fresh, error="twice")  # done is final
        [record] = [r async for r in inbox.export()]
    assert (record.status, record.attempts, record.last_error) == ("done", 2, None)


async def test_a_claim_buries_a_due_event_with_no_attempt_left(inbox_url: str) -> None:
    """An event whose last allowed claim ended without an outcome is returned dead, never handed out again."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await inbox.put(body(1), org_id=ORG)
        await inbox.put(body(2), org_id=ORG)
        assert [r.attempts for r in await inbox.claim(2, lease=60, max_attempts=2)] == [1, 1]
        clock.advance(61)
        assert [r.attempts for r in await inbox.claim(2, lease=60, max_attempts=2)] == [2, 2]
        clock.advance(61)
        buried = await inbox.claim(2, lease=60, max_attempts=2)
        assert [(r.status, r.attempts, r.last_error) for r in buried] == [("dead", 2, NEVER_FINISHED)] * 2
        clock.advance(61)
        assert await inbox.claim(2, lease=60, max_attempts=2) == []
        stats = await inbox.stats()
        assert (stats.pending, stats.dead) == (0, 2)
        assert await inbox.requeue_dead() == 2
        assert [r.attempts for r in await inbox.claim(2, lease=60, max_attempts=2)] == [1, 1]


async def test_postgres_times_come_from_the_database_clock(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker machine whose clock is an hour behind: its leases still end 60 s after the database's now()."""
    import time

    import asyncpg

    from fullstory_async.receiving._postgres import PostgresInbox

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    behind = PostgresInbox(postgres_url, retention=None)
    await behind.open()
    try:
        await behind.put(body(1), org_id=ORG)
        [claimed] = await behind.claim(1, lease=60)
    finally:
        await behind.aclose()
    monkeypatch.setattr(time, "time", real)
    conn = await asyncpg.connect(postgres_url)
    try:
        db_now = await conn.fetchval("SELECT extract(epoch from now())::double precision")
    finally:
        await conn.close()
    assert claimed.received_at == pytest.approx(db_now, abs=30)
    assert claimed.next_attempt_at == pytest.approx(db_now + 60, abs=30)
    async with open_inbox(postgres_url) as other:
        assert await other.claim(1, lease=60) == []  # the lease holds on every machine


async def test_retention_purges_done_events_and_their_keys_only(inbox_url: str) -> None:
    """Done events older than the retention go (their key with them); pending and dead ones stay."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, retention=3600, clock=clock) as inbox:
        for n in range(3):
            await inbox.put(body(n), org_id=ORG)
        done, dead, _pending = await inbox.claim(3, lease=60)
        await inbox.complete(done)
        await inbox.bury(dead, error="x")
        clock.advance(3599)
        assert await inbox.purge() == 0
        clock.advance(2)
        assert await inbox.purge() == 1
        statuses = sorted([r.status async for r in inbox.export()])
        assert statuses == ["dead", "pending"]
        assert await inbox.put(done.body, org_id=ORG)  # its dedupe key went with it


async def test_export_pages_through_every_event_in_order(inbox_url: str) -> None:
    """Export yields all events (more than one page) in the order received."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        for n in range(1203):
            clock.advance(0.001)
            await inbox.put(body(n), org_id=ORG)
        assert [r.body async for r in inbox.export()] == [body(n) for n in range(1203)]


async def test_a_newer_schema_is_refused_not_guessed(tmp_path: Path) -> None:
    """An inbox written by a newer SDK (schema version 99) is not opened."""
    url = f"sqlite:///{tmp_path}/inbox.db"
    async with open_inbox(url):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "inbox.db")) as conn, conn:  # closed, not only committed
        conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES (99)")
    with pytest.raises(InboxError, match="schema version 99"):
        async with open_inbox(url):
            pass


async def test_a_refused_sqlite_inbox_leaves_no_connection_open(tmp_path: Path) -> None:
    """A newer schema or a file that is not a database: refused, and no unclosed connection (ResourceWarning)."""
    async with open_inbox(f"sqlite:///{tmp_path}/newer.db"):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "newer.db")) as conn, conn:
        conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES (99)")
    (tmp_path / "junk.db").write_bytes(b"not a database, " * 512)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("newer.db", "junk.db"):
            with pytest.raises(InboxError):
                async with open_inbox(f"sqlite:///{tmp_path}/{name}"):
                    pass
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_synchronous_full_is_set_from_the_url(tmp_path: Path) -> None:
    """?synchronous=full (power-loss durability) reaches the connection; NORMAL is the default."""
    async with open_inbox(f"sqlite:///{tmp_path}/a.db?synchronous=full") as strict:
        assert await strict._call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 2  # type: ignore[attr-defined]
    async with open_inbox(f"sqlite:///{tmp_path}/b.db") as normal:
        assert await normal._call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 1  # type: ignore[attr-defined]
        assert await normal._call(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"  # type: ignore[attr-defined]


async def test_relative_and_absolute_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///rel.db is relative to the working directory, sqlite:////abs.db absolute."""
    monkeypatch.chdir(tmp_path)
    async with open_inbox("sqlite:///rel.db") as inbox:
        await inbox.put(body(1), org_id=ORG)
    assert (tmp_path / "rel.db").exists()
    async with open_inbox(f"sqlite:///{tmp_path}/abs.db"):
        pass
    assert (tmp_path / "abs.db").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:hunter2@h/db", "unsupported inbox URL"),
        ("sqlite://", "needs a file path"),
        ("sqlite:///:memory:", "not durable"),
        ("sqlite://host/x.db", "no host"),
        ("sqlite:///x.db?synchronous=off", "synchronous must be normal or full"),
        ("sqlite:///x.db?journal=delete", "unknown SQLite URL option"),
    ],
)
async def test_bad_urls_are_refused_naming_the_problem(url: str, problem: str) -> None:
    """Unsupported schemes and options raise InvalidArgumentError; a password is never echoed."""
    with pytest.raises(InvalidArgumentError, match=problem) as info:
        async with open_inbox(url):
            pass
    assert info.value.field == "url"
    assert "hunter2" not in str(info.value)


async def test_an_unopenable_sqlite_file_is_an_inbox_error(tmp_path: Path) -> None:
    """A path in a missing directory raises InboxError naming the path."""
    with pytest.raises(InboxError, match="cannot open the SQLite inbox"):
        async with open_inbox(f"sqlite:///{tmp_path}/missing/dir/x.db"):
            pass


async def test_postgres_password_is_never_shown(postgres_url: str) -> None:
    """A wrong password, a repr, an unreachable host: no message contains the password."""
    password = "pw-Zx81-never-shown"
    url = "postgresql://nobody:" + password + "@127.0.0.1:1/nowhere"
    with pytest.raises(InboxError) as info:
        async with open_inbox(url):
            pass
    assert password not in str(info.value)
    assert "***" in str(info.value)
    async with open_inbox(postgres_url.replace("postgres@", "postgres:" + password + "@")) as inbox:
        assert password not in repr(inbox)


@pytest.mark.parametrize(
    ("suffix", "secret"),
    [
        ("?password=pw-Q1-in-query", "pw-Q1-in-query"),
        ("?sslmode=disable&PASSWORD=pw%40Q2%2Fenc", "pw@Q2/enc"),
        ("?passfile=/run/pw-Q3-file", "/run/pw-Q3-file"),
        ("?sslpassword=pw-Q4-ssl&application_name=a", "pw-Q4-ssl"),
        ("?db_pass_word=pw-Q5-odd", "pw-Q5-odd"),
    ],
)
async def test_postgres_password_in_the_query_is_never_shown(postgres_url: str, suffix: str, secret: str) -> None:
    """A password-like DSN query parameter: not in the repr, the InboxError text, nor a refused URL."""
    from fullstory_async.receiving._postgres import redact

    unreachable = "postgresql://nobody@127.0.0.1:1/nowhere" + suffix
    assert secret not in redact(unreachable)
    assert "=***" in redact(unreachable)
    with pytest.raises(InboxError) as info:
        async with open_inbox(unreachable):
            pass
    assert secret not in str(info.value)
    assert secret.split("/")[-1] not in str(info.value)
    with pytest.raises(InvalidArgumentError) as refused:
        async with open_inbox("mysql://nobody@127.0.0.1:1/nowhere" + suffix):
            pass
    assert secret not in str(refused.value)
    if suffix.startswith(("?password", "?sslpassword")):  # parameters PostgreSQL accepts: the inbox opens
        async with open_inbox(postgres_url + suffix.replace("?", "&" if "?" in postgres_url else "?")) as inbox:
            assert secret not in repr(inbox)


async def test_closed_inbox_refuses_calls(inbox_url: str) -> None:
    """After the context exits, a put raises InboxError instead of silently dropping the event."""
    async with open_inbox(inbox_url) as inbox:
        pass
    with pytest.raises(InboxError, match="closed"):
        await inbox.put(body(1), org_id=ORG)


def test_ci_fails_rather_than_skips_without_postgres(
    require_postgres: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the DSN variable, the PostgreSQL tests skip locally but fail when CI is set."""
    monkeypatch.delenv("FULLSTORY_TEST_POSTGRES_DSN", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="FULLSTORY_TEST_POSTGRES_DSN is not set"):
        require_postgres()
