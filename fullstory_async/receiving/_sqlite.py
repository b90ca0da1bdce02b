"""The SQLite inbox: stdlib ``sqlite3`` in WAL mode, every statement on one writer thread.

The event loop never touches the database: each call queues a job for the writer
thread and awaits its future. The thread takes every job queued at that moment and runs
them in one transaction (group commit), so a burst of deliveries costs one commit; a
job's future resolves only after that ``COMMIT`` returned. If a job fails, the batch is
rolled back and each job is run again alone, so one bad job never fails the others.

``synchronous=NORMAL`` (the default) keeps every committed transaction across a crash or
SIGKILL of the process; ``?synchronous=full`` in the URL also keeps it across power loss
(an fsync per commit). Several processes may share one file: writes take the database
lock (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fullstory_async.receiving._inbox import (
    COLUMNS,
    NEVER_FINISHED,
    NO_LIMIT,
    SCHEMA_VERSION,
    Inbox,
    InboxError,
    InboxRecord,
    InboxStats,
    check_schema_version,
    claim_update,
    delivery_key,
    migrations,
)

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
_BATCH = 512
_BUSY_TIMEOUT_MS = 30_000
_EXPORT_PAGE = 500

_MIGRATIONS = migrations(blob="BLOB", real="REAL")


def _record(row: tuple[Any, ...]) -> InboxRecord:
    key, org_id, body, received_at, status, attempts, signed_at, last_error, next_attempt_at, traceparent = row
    return InboxRecord(
        key, org_id, bytes(body), received_at, status, attempts, signed_at, last_error, next_attempt_at, traceparent
    )


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS fullstory_inbox_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM fullstory_inbox_schema").fetchone()
    version = row[0] or 0
    check_schema_version(version)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[target]:
            conn.execute(statement)
        conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES (?)", (target,))


class SqliteInbox(Inbox):
    """An `Inbox` in one SQLite file (open it with `open_inbox`)."""

    def __init__(self, path: str, *, synchronous: str, retention: float | None, clock: Callable[[], float]) -> None:
        super().__init__(retention=retention, clock=clock)
        self.path = path
        self.synchronous = synchronous
        self._jobs: queue.SimpleQueue[tuple[Job, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<SqliteInbox path={self.path!r} synchronous={self.synchronous}>"

    async def open(self) -> None:
        """Start the writer thread, create or migrate the schema."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fullstory-inbox-sqlite", daemon=True)
        self._thread.start()
        await ready

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                _migrate(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()  # a refused inbox (newer schema, not a database) leaves no open connection behind
            raise
        return conn

    def _serve(self, ready: asyncio.Future[None]) -> None:
        loop = ready.get_loop()
        try:
            conn = self._connect()
        except (sqlite3.Error, OSError, InboxError) as exc:
            error = (
                exc if isinstance(exc, InboxError) else InboxError(f"cannot open the SQLite inbox {self.path!r}: {exc}")
            )
            loop.call_soon_threadsafe(_settle, ready, None, error)
            return
        loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                batch = [job]
                while len(batch) < _BATCH:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._jobs.put(None)  # stop after this batch
                        break
                    batch.append(job)
                outcomes = self._run_batch(conn, batch)
                loop.call_soon_threadsafe(_settle_all, outcomes)  # one wake-up of the loop per batch
        finally:
            conn.close()

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[Job, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = [
                (future, job(conn), None) for job, future in batch
            ]
            conn.execute("COMMIT")
            return results
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                failure = exc if isinstance(exc, InboxError) else InboxError(f"SQLite inbox write failed: {exc}")
                return [(batch[0][1], None, failure)]
        return [outcome for item in batch for outcome in self._run_batch(conn, [item])]

    async def _call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise InboxError("the inbox is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((job, future))
        return await future

    async def put(
        self, body: bytes, *, org_id: str, signed_at: float | None = None, traceparent: str | None = None
    ) -> bool:
        """Store a verified delivery; ``False`` if its key was already stored."""
        now = self.clock()
        key = delivery_key(org_id, body)
        row = (key, org_id, body, signed_at, now, now, traceparent)
        purge = self._purge_due()

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO fullstory_inbox (key, org_id, body, signed_at, received_at, next_attempt_at, "
                "traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if purge:
                self._purge(conn, now)
            return cursor.rowcount == 1

        stored = await self._call(insert)
        if stored:
            self.arrival.set()
        return stored

    async def claim(self, limit: int, *, lease: float, max_attempts: int | None = None) -> list[InboxRecord]:
        """Take up to ``limit`` due pending events for ``lease`` seconds (bury those out of attempts)."""
        now = self.clock()

        def take(conn: sqlite3.Connection) -> list[InboxRecord]:
            keys = [
                key
                for (key,) in conn.execute(
                    "SELECT key FROM fullstory_inbox WHERE status = 'pending' AND next_attempt_at <= ? "
                    "ORDER BY next_attempt_at, received_at LIMIT ?",
                    (now, limit),
                )
            ]
            if not keys:
                return []
            names = {f"k{i}": key for i, key in enumerate(keys)}
            marks = ", ".join(f":{name}" for name in names)  # no RETURNING: it needs SQLite 3.35
            sql = claim_update(now=":now", lease_until=":lease_until", max_attempts=":max_attempts", error=":error")
            params = {"now": now, "lease_until": now + lease, "max_attempts": max_attempts or NO_LIMIT}
            conn.execute(f"{sql} WHERE key IN ({marks})", {**params, "error": NEVER_FINISHED, **names})
            marks = ", ".join("?" * len(keys))
            sql = f"SELECT {COLUMNS} FROM fullstory_inbox WHERE key IN ({marks}) ORDER BY received_at, key"
            return [_record(row) for row in conn.execute(sql, keys)]

        return await self._call(take)

    async def _settle(self, record: InboxRecord, assignments: str, *params: Any) -> bool:
        sql = f"UPDATE fullstory_inbox SET {assignments} WHERE key = ? AND status = 'pending' AND next_attempt_at = ?"
        return bool(
            await self._call(lambda conn: conn.execute(sql, (*params, record.key, record.next_attempt_at)).rowcount)
        )

    async def complete(self, record: InboxRecord) -> bool:
        """Mark a claimed event ``done`` (if this claim still holds it)."""
        return await self._settle(record, "status = 'done', processed_at = ?, last_error = NULL", self.clock())

    async def retry(self, record: InboxRecord, *, error: str, delay: float) -> bool:
        """Make a claimed event due again in ``delay`` seconds (if this claim still holds it)."""
        return await self._settle(record, "next_attempt_at = ?, last_error = ?", self.clock() + delay, error)

    async def bury(self, record: InboxRecord, *, error: str) -> bool:
        """Mark a claimed event ``dead`` (if this claim still holds it)."""
        return await self._settle(record, "status = 'dead', processed_at = ?, last_error = ?", self.clock(), error)

    async def _update(self, sql: str, *params: Any) -> int:
        return await self._call(lambda conn: conn.execute(sql, params).rowcount)

    async def requeue_dead(self) -> int:
        """Make every dead event pending again, attempts reset."""
        sql = (
            "UPDATE fullstory_inbox SET status = 'pending', attempts = 0, next_attempt_at = ?, processed_at = NULL "
            "WHERE status = 'dead'"
        )
        return await self._update(sql, self.clock())

    async def stats(self) -> InboxStats:
        """Count the events in each state."""

        def count(conn: sqlite3.Connection) -> InboxStats:
            counts = dict(conn.execute("SELECT status, count(*) FROM fullstory_inbox GROUP BY status").fetchall())
            oldest = conn.execute("SELECT min(received_at) FROM fullstory_inbox WHERE status = 'pending'").fetchone()
            return InboxStats(counts.get("pending", 0), counts.get("done", 0), counts.get("dead", 0), oldest[0])

        return await self._call(count)

    async def export(self) -> AsyncIterator[InboxRecord]:
        """Every stored event, in the order received, a page at a time."""
        after: tuple[float, str] = (float("-inf"), "")
        sql = f"SELECT {COLUMNS} FROM fullstory_inbox WHERE (received_at, key) > (?, ?) ORDER BY received_at, key"
        sql += " LIMIT ?"
        while True:
            params = (*after, _EXPORT_PAGE)

            def page_of(conn: sqlite3.Connection, params: tuple[object, ...] = params) -> list[InboxRecord]:
                return [_record(row) for row in conn.execute(sql, params)]

            page = await self._call(page_of)
            for record in page:
                yield record
            if len(page) < _EXPORT_PAGE:
                return
            after = (page[-1].received_at, page[-1].key)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        if self.retention is None:
            return 0
        sql = "DELETE FROM fullstory_inbox WHERE status = 'done' AND processed_at < ?"
        return conn.execute(sql, (now - self.retention,)).rowcount

    async def purge(self) -> int:
        """Delete ``done`` events processed more than ``retention`` seconds ago."""
        now = self.clock()
        return await self._call(lambda conn: self._purge(conn, now))

    async def aclose(self) -> None:
        """Let queued writes commit, then stop the writer thread (idempotent)."""
        if self._closed or self._thread is None:
            self._closed = True
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    async def release(self, record: InboxRecord) -> bool:
        """Give a claimed event back unrun, due now, its attempt uncounted (if this claim still holds it)."""
        return await self._settle(record, "attempts = attempts - 1, next_attempt_at = ?", self.clock())


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for outcome in outcomes:
        _settle(*outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the write happened (or not) all the same
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
