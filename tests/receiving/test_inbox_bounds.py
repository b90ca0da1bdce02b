"""Every inbox operation is bounded, and the inbox is private: faults we did not write.

Another process's connection holds the SQLite write lock (``BEGIN EXCLUSIVE``); a PostgreSQL
server freezes behind a loopback TCP proxy paused by the test (never the shared server
itself). Deliveries are answered ``503`` with ``Retry-After`` within about the commit timeout,
reads and shutdown are not held up, and once the fault ends the same receiver acknowledges
again; every ``202`` is in the inbox. Bounds are scaled down (0.5 s) and asserted generously.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from fullstory_async.receiving import Inbox, InboxAttempt, InboxError, InboxFilter, open_inbox, signed_delivery

from .conftest import ServeReceiver

SECRET = "wh-secret-bounds-4Rt8"
ORG = "o-1A2B3C-na1"
BOUND = 0.5
LATE = 4 * BOUND  # "about the bound", generously: a loaded CI machine, a process start


def deliveries(count: int, prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    return [signed_delivery("note.created", {"id": f"{prefix}-{n}"}, secret=SECRET, org_id=ORG) for n in range(count)]


async def post_all(session: aiohttp.ClientSession, url: str, items: list[tuple[bytes, dict[str, str]]]) -> list:
    """POST every delivery at once; return (status, Retry-After, seconds taken) for each."""

    async def one(body: bytes, headers: dict[str, str]) -> tuple[int, str | None, float]:
        started = time.monotonic()
        async with session.post(url, data=body, headers=headers) as response:
            return response.status, response.headers.get("Retry-After"), time.monotonic() - started

    return list(await asyncio.gather(*(one(body, headers) for body, headers in items)))


async def stored(inbox: Inbox) -> set[bytes]:
    return {record.body async for record in inbox.export()}


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the SQLite file's write lock from another connection, on another thread, until the block ends."""
    taken, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:  # pragma: no cover - reported below
            failure.append(exc)
            taken.set()
            return
        try:
            conn.execute("BEGIN EXCLUSIVE")
            taken.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, name="lock-holder")
    thread.start()
    taken.wait(10)
    assert not failure
    try:
        yield
    finally:
        release.set()
        thread.join(10)


async def test_a_held_sqlite_lock_costs_a_delivery_the_commit_timeout_and_loses_nothing(
    tmp_path: Path, serve_receiver: ServeReceiver
) -> None:
    """Lock held: 503 + Retry-After within the bound, reads, readiness 503; released: 202 again, every 202 stored."""
    path = tmp_path / "inbox.db"
    first, second = deliveries(8, "held"), deliveries(8, "after")
    async with open_inbox(f"sqlite:///{path}", commit_timeout=BOUND) as inbox:
        site = await serve_receiver(SECRET, None, inbox=inbox)
        assert await inbox.put(b'{"eventName":"x","version":1,"data":{}}', org_id=ORG)
        ready_url = site.url + "/health/ready"
        with locked(path):
            answers = await post_all(site.session, site.url, first)
            assert {(status, retry_after) for status, retry_after, _ in answers} == {(503, "1")}  # ceil(0.5)
            assert max(seconds for *_, seconds in answers) < LATE  # once per batch, not once per delivery
            started = time.monotonic()
            assert (await inbox.stats()).pending == 1  # a read passes the held lock
            async with open_inbox(f"sqlite:///{path}", commit_timeout=BOUND) as another:  # so does opening one
                assert not await another.ready()
            assert [record.key async for record in inbox.export()] != []
            with pytest.raises(InboxError, match=r"within 0\.5 s"):
                await inbox.claim(10, lease=60)  # the worker's claim is bounded too
            async with site.session.get(ready_url) as response:
                assert (response.status, await response.json()) == (503, {"status": "inbox unavailable"})
            assert time.monotonic() - started < 2 * LATE
        async with site.session.get(ready_url) as response:
            assert (response.status, await response.json()) == (200, {"status": "ready"})
        answers = await post_all(site.session, site.url, first + second)
        assert [status for status, *_ in answers] == [202] * 16
        held = await stored(inbox)
    assert held >= {body for body, _ in first + second}
    assert len(held) == 17


async def test_the_asgi_receiver_answers_503_with_retry_after_and_readiness(tmp_path: Path) -> None:
    """The same bound and the same answers when the receiver is served as ASGI (httpx's transport)."""
    import httpx

    from fullstory_async.receiving import WebhookReceiver

    path = tmp_path / "inbox.db"
    (body, headers), *_ = deliveries(1, "asgi")
    async with open_inbox(f"sqlite:///{path}", commit_timeout=BOUND) as inbox:
        transport = httpx.ASGITransport(app=WebhookReceiver(SECRET, inbox=inbox).asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            with locked(path):
                refused = await client.post("/", content=body, headers=headers)
                assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1")  # ceil(0.5)
                unready = await client.get("/health/ready")
                assert (unready.status_code, unready.json()) == (503, {"status": "inbox unavailable"})
                assert (await client.get("/health")).status_code == 200  # liveness is not readiness
            assert (await client.get("/health/ready")).json() == {"status": "ready"}
            accepted = await client.post("/", content=body, headers=headers)
            assert (accepted.status_code, accepted.headers.get("retry-after")) == (202, None)


async def test_a_failing_job_fails_alone_without_a_second_lock_wait(tmp_path: Path) -> None:
    """A batch with a failing job: the others commit, and nothing is re-run (each job runs exactly once)."""
    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db", commit_timeout=BOUND) as inbox:
        runs: list[str] = []

        def job(name: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
            def run(conn: sqlite3.Connection) -> str:
                runs.append(name)
                conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES (?)", (100 + len(runs),))
                if fail:
                    raise sqlite3.IntegrityError("this job is bad")
                return name

            return run

        with locked(tmp_path / "inbox.db"):  # queue all three behind the lock: they run as one batch
            calls = [asyncio.ensure_future(inbox._call(job(name, fail=name == "b"))) for name in "abc"]  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # let them queue while the lock is held
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert (results[0], results[2]) == ("a", "c")
        assert isinstance(results[1], InboxError)
        assert "this job is bad" in str(results[1])
        assert sorted(runs) == ["a", "b", "c"]
        versions = await inbox._call(
            lambda conn: [v for (v,) in conn.execute("SELECT version FROM fullstory_inbox_schema")]
        )  # type: ignore[attr-defined]
    assert sorted(v for v in versions if v > 100) == [101, 103]  # a's and c's writes; b's was rolled back alone


async def test_each_call_behind_a_held_lock_fails_at_its_own_deadline(tmp_path: Path) -> None:
    """One timer bounds every waiting call: a later call fails at its own bound, not with the first, nor late."""
    path = tmp_path / "inbox.db"
    async with open_inbox(f"sqlite:///{path}", commit_timeout=BOUND) as inbox:

        async def refused_put(body: bytes) -> tuple[float, float]:
            started = time.monotonic()
            # the loop's timer or the writer's one lock wait, whichever ends first: both are the bound
            with pytest.raises(InboxError, match=r"commit within 0\.5 s"):
                await inbox.put(body, org_id=ORG)
            return started, time.monotonic()

        with locked(path):
            first = asyncio.ensure_future(refused_put(b'{"n":1}'))
            await asyncio.sleep(BOUND / 2)  # the second call's deadline is half a bound after the first's
            second = asyncio.ensure_future(refused_put(b'{"n":2}'))
            (began, failed), (began_later, failed_later) = await asyncio.gather(first, second)
        early = 0.01  # SQLite's busy timeout counts whole milliseconds
        assert BOUND - early <= failed - began < LATE
        assert BOUND - early <= failed_later - began_later < LATE
        for n in range(50):  # the lock is free again: calls commit, and finished ones leave the deadline FIFO
            assert await inbox.put(b'{"n":%d}' % (n + 3), org_id=ORG)
        assert len(inbox._waiting) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("undo", ["ABORT", "ROLLBACK"])
async def test_a_refused_put_in_a_batch_loses_no_acknowledged_put(tmp_path: Path, undo: str) -> None:
    """A put (one statement, no savepoint) refused inside a batch: ABORT fails it alone; ROLLBACK fails the batch.

    A trigger refuses one org's rows: ``RAISE(ABORT)`` undoes that statement only, so the
    other puts of the batch commit; ``RAISE(ROLLBACK)`` undoes the whole transaction, so
    every put of the batch fails (none runs on outside the transaction). Either way every
    put answered ``True`` is stored.
    """
    path = tmp_path / "inbox.db"
    async with open_inbox(f"sqlite:///{path}", commit_timeout=BOUND) as inbox:
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # closed, not only committed
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON fullstory_inbox WHEN NEW.org_id = 'o-bad' "
                f"BEGIN SELECT RAISE({undo}, 'refused by a trigger'); END"
            )
        bodies = [b'{"n":%d}' % n for n in range(5)]
        with locked(path):  # queue the five behind the lock: they run as one batch
            puts = [
                asyncio.ensure_future(inbox.put(body, org_id="o-bad" if n == 2 else ORG))
                for n, body in enumerate(bodies)
            ]
            await asyncio.sleep(0)
        results = await asyncio.gather(*puts, return_exceptions=True)
        assert isinstance(results[2], InboxError)
        assert "refused by a trigger" in str(results[2])
        if undo == "ABORT":
            assert results[:2] + results[3:] == [True] * 4
        else:
            assert all(isinstance(result, InboxError) for result in results)
        acknowledged = {body for body, result in zip(bodies, results, strict=True) if result is True}
        assert await stored(inbox) == acknowledged


async def test_closing_is_not_held_up_by_a_locked_inbox(tmp_path: Path) -> None:
    """Writes queued behind a held lock fail within the bound, and aclose returns within it too."""
    path = tmp_path / "inbox.db"
    async with contextlib.AsyncExitStack() as stack:
        inbox = await stack.enter_async_context(open_inbox(f"sqlite:///{path}", commit_timeout=BOUND))
        with locked(path):
            puts = [asyncio.ensure_future(inbox.put(body, org_id=ORG)) for body, _ in deliveries(20, "close")]
            await asyncio.sleep(0)
            started = time.monotonic()
            await inbox.aclose()
            closed_after = time.monotonic() - started
            results = await asyncio.gather(*puts, return_exceptions=True)
    assert closed_after < LATE
    assert all(isinstance(result, InboxError) for result in results)


# --- PostgreSQL behind a paused proxy ---------------------------------------------------------


class PausableProxy:
    """A loopback TCP proxy to the test server; `pause` stops every byte both ways (a frozen server)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self.flowing.wait()
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        self.flowing.set()
        self.server.close()
        for writer in self._writers:
            writer.close()
        await self.server.wait_closed()


@pytest.fixture
async def proxied_postgres(postgres_url: str) -> AsyncIterator[tuple[str, PausableProxy]]:
    """Return the test database's DSN through a pausable proxy, and the proxy."""
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = PausableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = parts.netloc.rpartition("@")
    dsn = parts._replace(netloc=f"{netloc[0]}{netloc[1]}127.0.0.1:{proxy.port}").geturl()
    yield dsn, proxy
    await proxy.close()


async def test_a_frozen_postgres_costs_a_delivery_the_commit_timeout_and_the_receiver_recovers(
    proxied_postgres: tuple[str, PausableProxy], serve_receiver: ServeReceiver
) -> None:
    """Paused: 503 + Retry-After within the bound, readiness 503; resumed: 202 again, every 202 stored once."""
    dsn, proxy = proxied_postgres
    frozen, after = deliveries(6, "frozen"), deliveries(6, "thawed")
    async with open_inbox(dsn, commit_timeout=BOUND) as inbox:
        site = await serve_receiver(SECRET, None, inbox=inbox)
        assert [status for status, *_ in await post_all(site.session, site.url, after[:1])] == [202]
        proxy.flowing.clear()
        answers = await post_all(site.session, site.url, frozen)
        assert {(status, retry_after) for status, retry_after, _ in answers} == {(503, "1")}
        assert max(seconds for *_, seconds in answers) < LATE
        async with site.session.get(site.url + "/health/ready") as response:
            assert response.status == 503
        with pytest.raises(InboxError, match=r"within 0\.5 s"):
            await inbox.stats()
        proxy.flowing.set()
        answers = await post_all(site.session, site.url, frozen + after)
        assert [status for status, *_ in answers] == [202] * 12
        async with site.session.get(site.url + "/health/ready") as response:
            assert response.status == 200
        held = [record.body async for record in inbox.export()]
    assert sorted(held) == sorted(body for body, _ in frozen + after)


async def test_closing_is_not_held_up_by_a_frozen_postgres(proxied_postgres: tuple[str, PausableProxy]) -> None:
    dsn, proxy = proxied_postgres
    async with contextlib.AsyncExitStack() as stack:
        inbox = await stack.enter_async_context(open_inbox(dsn, commit_timeout=BOUND))
        proxy.flowing.clear()
        put = asyncio.ensure_future(inbox.put(b"{}", org_id=ORG))
        await asyncio.sleep(0)
        started = time.monotonic()
        await inbox.aclose()
        assert time.monotonic() - started < LATE
        with pytest.raises(InboxError):
            await put


async def test_opening_a_frozen_postgres_is_bounded(proxied_postgres: tuple[str, PausableProxy]) -> None:
    dsn, proxy = proxied_postgres
    proxy.flowing.clear()
    started = time.monotonic()
    with pytest.raises(InboxError, match=r"within 0\.5 s"):
        async with open_inbox(dsn, commit_timeout=BOUND):
            pass
    assert time.monotonic() - started < LATE


# --- private by default --------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_a_new_inbox_is_readable_by_its_owner_only(tmp_path: Path, umask: int) -> None:
    """The file and SQLite's -wal and -shm files are 0600 whatever the umask."""
    previous = os.umask(umask)
    try:
        async with open_inbox(f"sqlite:///{tmp_path}/inbox.db") as inbox:
            await inbox.put(b"{}", org_id=ORG)
            modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in os.listdir(tmp_path)}
    finally:
        os.umask(previous)
    assert modes == {"inbox.db": 0o600, "inbox.db-wal": 0o600, "inbox.db-shm": 0o600}


async def test_an_inbox_readable_by_others_is_warned_about_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    async with open_inbox(f"sqlite:///{path}"):
        pass
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="fullstory_async.receiving"):
        async with open_inbox(f"sqlite:///{path}"):
            pass
    assert [record.getMessage() for record in caplog.records if str(path) in record.getMessage()]
    assert "0644" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="fullstory_async.receiving"):
        async with open_inbox(f"sqlite:///{path}"):
            pass
    assert caplog.records == []


# --- read-only opens -------------------------------------------------------------------------


async def test_create_false_never_creates_nor_adds_tables(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(InboxError, match=r"typo\.db.*does not exist"):
        async with open_inbox(f"sqlite:///{missing}", create=False):
            pass
    assert not missing.exists()
    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(InboxError, match=r"app\.db.*not a fullstory-async inbox"):
        async with open_inbox(f"sqlite:///{other}", create=False):
            pass
    with contextlib.closing(sqlite3.connect(other)) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["users"]


async def test_the_documented_postgres_grants_are_all_an_inbox_needs(postgres_url: str) -> None:
    """Run docs/receiving.md's role SQL as written (names made unique): the owner creates, the app role works."""
    import re
    import secrets
    from urllib.parse import urlsplit

    import asyncpg

    docs = (Path(__file__).parents[2] / "docs" / "receiving.md").read_text()
    owner_sql, app_sql = re.findall(r"```sql\n(.*?)```", docs, re.DOTALL)
    owner, app = f"fs_owner_{secrets.token_hex(4)}", f"fs_app_{secrets.token_hex(4)}"
    parts = urlsplit(postgres_url)
    database = parts.path.lstrip("/") or "postgres"

    def named(sql: str) -> str:
        sql = re.sub(r"\bfullstory_app\b", app, sql)
        sql = re.sub(r"\bfullstory\b", owner, sql)
        return re.sub(r"\bwebhooks\b", database, sql).replace("'...'", "'x'")

    def as_role(role: str) -> str:
        return parts._replace(netloc=f"{role}:x@{parts.netloc.rpartition('@')[2]}").geturl()

    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(named(owner_sql))
        await admin.execute(f"CREATE ROLE {app} LOGIN PASSWORD 'x'; ALTER ROLE {app} SET search_path = {owner}")
        async with open_inbox(as_role(owner)) as inbox:  # the owner creates the tables in its schema
            assert await inbox.put(b'{"n": 1}', org_id=ORG)
        await admin.execute(named(app_sql))
        async with open_inbox(as_role(app), retention=1e-6) as inbox:  # the app role only uses them
            assert await inbox.put(b'{"n": 2}', org_id=ORG)
            one, two = await inbox.claim(2, lease=60)
            assert await inbox.complete(one)
            assert await inbox.bury(two, error="boom")
            assert await inbox.requeue_dead() == 1
            assert len((await inbox.list()).records) == 2  # schema 3: listing, the history, replay
            assert await inbox.get(one.key) is not None
            assert (await inbox.replay(InboxFilter(status="done"))).replayed == 1
            three, four = await inbox.claim(2, lease=60)
            assert await inbox.complete(four, attempt=InboxAttempt(1, 0.0, 0.1, "done"))
            assert await inbox.retry(three, error="again", delay=0)
            assert await inbox.purge() == 1
            assert (await inbox.stats()).pending == 1
            assert len([record async for record in inbox.export()]) == 1
            assert await inbox.ready()
        assert await admin.fetchval(f"SELECT count(*) FROM {owner}.fullstory_inbox") == 1
        assert await admin.fetchval(f"SELECT count(*) FROM {owner}.fullstory_inbox_attempts") == 0  # purged with it
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {owner} CASCADE")
        for role in (app, owner):
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await admin.execute(f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")
        await admin.close()
