"""The SQLite inbox: stdlib ``sqlite3`` in WAL mode, every write on one writer thread.

The design is a transactional inbox with *group commit* and *bounded waits*. The event
loop never touches the database: each write queues a job for the writer thread and awaits
its future for at most ``commit_timeout`` seconds. The thread takes every job queued at that
moment and runs them in one transaction: one ``BEGIN IMMEDIATE`` (one wait for the database
lock, at most until the last of their callers gives up), each job in its own ``SAVEPOINT``
(a failing job is rolled back alone and never fails the others, nor runs them twice; a
one-statement job, a ``put``, needs none: SQLite undoes a failed statement alone), one
``COMMIT``; each future is settled as soon as that outcome is known, the whole batch at once
when the lock never came. A job whose caller already gave up (timed out or cancelled) before
the lock was taken is not run at all, so a late claim never takes events nobody handles.

Reads (`stats`, `export`) use their own short-lived connection: in WAL mode they pass
another process's write lock (a ``BEGIN EXCLUSIVE``, a long write), and so does opening an
inbox whose schema is up to date. The file, and with
it SQLite's ``-wal`` and ``-shm`` files, is created readable by its owner only (0600).

``synchronous=NORMAL`` (the default) keeps every committed transaction across a crash or
SIGKILL of the process; ``?synchronous=full`` in the URL also keeps it across power loss
(an fsync per commit). Several processes may share one file.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from fullstory_async.receiving import _inbox
from fullstory_async.receiving._activity import InboxActivity, read_activity
from fullstory_async.receiving._inbox import (
    BACKFILL_BATCH,
    BACKFILL_TABLE,
    COLUMNS,
    DEFAULT_COMMIT_TIMEOUT,
    HISTORY_KEPT,
    NEVER_FINISHED,
    NO_LIMIT,
    SCHEMA_VERSION,
    Inbox,
    InboxAttempt,
    InboxError,
    InboxRecord,
    InboxStats,
    check_schema_version,
    claim_update,
    delivery_key,
    event_type_of,
    migrations,
)
from fullstory_async.receiving._query import (
    InboxEntry,
    InboxFilter,
    Params,
    counts_sql,
    page_sql,
    replay_batch_sql,
    stats_sql,
)

logger = logging.getLogger("fullstory_async.receiving")

T = TypeVar("T")
Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]
_BATCH = 512
_EXPORT_PAGE = 500
_QUEUED, _STARTED, _ABANDONED = "queued", "started", "abandoned"

_MIGRATIONS = migrations(blob="BLOB", real="REAL", serial="INTEGER PRIMARY KEY")


def _record(row: tuple[Any, ...]) -> InboxRecord:
    key, org_id, body, *rest = row
    return InboxRecord(key, org_id, bytes(body), *rest)


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """Return the inbox schema version, ``None`` when the database has no inbox tables."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fullstory_inbox_schema'"
    if conn.execute(sql).fetchone() is None:
        return None
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM fullstory_inbox_schema").fetchone()[0])


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS fullstory_inbox_schema (version INTEGER NOT NULL)")
    version = _schema_version(conn) or 0
    check_schema_version(version)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[target]:
            conn.execute(statement)
        conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES (?)", (target,))


class _Job:
    """One queued write: what to run, the caller's future, and whether the caller still waits.

    A job that runs ``one_statement`` needs no savepoint: SQLite undoes a failed statement
    alone and keeps the transaction (its statement journal), or rolls the whole transaction
    back (``SQLITE_FULL``, ``SQLITE_IOERR``, a trigger's ``RAISE(ROLLBACK)``), which fails the batch.
    """

    __slots__ = ("deadline", "future", "one_statement", "run", "state")

    def __init__(
        self,
        run: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        deadline: float,
        one_statement: bool,
    ) -> None:
        self.run = run
        self.future = future
        self.deadline = deadline
        self.one_statement = one_statement
        self.state = _QUEUED


class SqliteInbox(Inbox):
    """An `Inbox` in one SQLite file (open it with `open_inbox`)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str,
        retention: float | None,
        clock: Callable[[], float],
        commit_timeout: float = DEFAULT_COMMIT_TIMEOUT,
        create: bool = True,
    ) -> None:
        super().__init__(retention=retention, clock=clock, commit_timeout=commit_timeout)
        self.path = path
        self.synchronous = synchronous
        self.create = create
        self._uri = ""
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._states = threading.Lock()  # guards _Job.state between the loop and the writer thread
        self._waiting: collections.deque[_Job] = collections.deque()  # in call order, so in deadline order
        self._timer: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<SqliteInbox path={self.path!r} synchronous={self.synchronous}>"

    async def open(self) -> None:
        """Start the writer thread; create (owner-only) or migrate the schema, or with ``create=False`` check it."""
        self._uri = self._prepare_file()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        thread = threading.Thread(target=self._serve, args=(ready,), name="fullstory-inbox-sqlite", daemon=True)
        thread.start()
        await ready
        if self.create:  # schema 3's event types, filled in the background so deliveries keep committing
            await self._start_backfill(lambda: self._call(_backfill_batch))

    def _prepare_file(self) -> str:
        """Create the file owner-only if allowed and missing, warn if others may read it; return its URI."""
        try:
            if self.create:
                with contextlib.suppress(FileExistsError):  # SQLite gives its -wal and -shm files the same mode
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                    os.chmod(self.path, 0o600)  # whatever the umask took away
            mode = os.stat(self.path).st_mode & 0o777
        except FileNotFoundError as exc:
            if self.create:
                raise self._error("cannot open", exc) from None
            raise InboxError(f"no inbox at {self.path!r}: the file does not exist") from None
        except OSError as exc:
            raise self._error("cannot open", exc) from None
        if mode & 0o077:
            logger.warning(
                "the inbox file %r is open to other users (mode %04o): they can read every stored delivery; "
                "run chmod 600 on it and its -wal and -shm files",
                self.path,
                mode,
            )
        return Path(self.path).absolute().as_uri()

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{self._uri}?mode=rw", uri=True, isolation_level=None, timeout=self.commit_timeout)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.commit_timeout * 1000)}")
            if writer:
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                if self.create:
                    conn.execute("PRAGMA journal_mode = WAL")  # no lock needed once the file is in WAL mode
                self._prepare_schema(conn)
        except BaseException:
            conn.close()  # a refused inbox (newer schema, not a database) leaves no open connection behind
            raise
        return conn

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        """Check the schema; create or migrate it only when needed and allowed (``create``).

        An up-to-date inbox is opened with a read alone, so it opens while another process holds the lock.
        """
        version = _schema_version(conn)
        check_schema_version(version or 0)
        if version == SCHEMA_VERSION:
            return
        if not self.create:
            if version is None:
                raise InboxError(
                    f"{self.path!r} is not a fullstory-async inbox (it has no inbox tables); nothing changed"
                )
            raise InboxError(
                f"the inbox {self.path!r} has schema version {version}: open it once with receive or open_inbox "
                "to migrate it"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            _migrate(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _serve(self, ready: asyncio.Future[None]) -> None:
        loop = ready.get_loop()
        try:
            conn = self._connect(writer=True)
        except (sqlite3.Error, OSError, InboxError) as exc:
            error = exc if isinstance(exc, InboxError) else self._error("cannot open", exc)
            assert self._stopped is not None
            settled: list[Outcome] = [(ready, None, error), (self._stopped, None, None)]
            loop.call_soon_threadsafe(_settle_all, settled)
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
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle_all, outcomes)  # one wake-up of the loop per batch
        finally:
            conn.close()
            assert self._stopped is not None
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, self._stopped, None, None)

    def _error(self, doing: str, exc: BaseException) -> InboxError:
        return InboxError(f"{doing} the SQLite inbox {self.path!r}: {exc}")

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """Run the batch in one transaction (one lock wait, a savepoint per job); return every job's outcome."""
        if all(job.state == _ABANDONED for job in batch):  # only the loop abandons, and only queued jobs
            return []
        wait = max(job.deadline for job in batch) - time.monotonic()
        outcomes: list[Outcome] = []
        try:
            conn.execute(f"PRAGMA busy_timeout = {max(1, int(wait * 1000))}")  # one wait, for the whole batch
            conn.execute("BEGIN IMMEDIATE")
            with self._states:
                live = [job for job in batch if job.state == _QUEUED]
                for job in live:
                    job.state = _STARTED
            for job in live:
                if not job.one_statement:
                    conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((job.future, job.run(conn), None))
                except Exception as exc:  # this job alone: its savepoint (or its one statement) is undone
                    if not job.one_statement:
                        conn.execute("ROLLBACK TO job")
                    elif not conn.in_transaction:  # SQLite rolled the whole transaction back: the batch fails
                        raise sqlite3.OperationalError(f"the transaction was rolled back: {exc}") from exc
                    outcomes.append(
                        (job.future, None, exc if isinstance(exc, InboxError) else self._error("cannot write", exc))
                    )
                if not job.one_statement:
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
            if busy:
                error = InboxError(
                    f"the SQLite inbox {self.path!r} could not commit within {self.commit_timeout:g} s: "
                    "another connection holds its write lock"
                )
            else:
                error = self._error("cannot write", exc)
            return [(job.future, None, error) for job in batch]
        return outcomes

    async def _call(self, run: Callable[[sqlite3.Connection], T], *, one_statement: bool = False) -> T:
        """Run ``run`` on the writer thread in the next batch; ``one_statement``: it executes exactly one statement."""
        if self._closed:
            raise InboxError("the inbox is closed")
        loop = asyncio.get_running_loop()
        job = _Job(run, loop.create_future(), time.monotonic() + self.commit_timeout, one_statement)
        self._jobs.put(job)
        self._watch(loop, job)
        try:
            return await job.future  # type: ignore[no-any-return]
        finally:
            with self._states:
                if job.state == _QUEUED:  # not started: the writer skips it
                    job.state = _ABANDONED

    def _watch(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        """Bound ``job`` by its deadline: one timer for all waiting jobs, not one per call.

        Every job gets the same ``commit_timeout``, so the order of calls is the order of
        deadlines: the jobs wait in a FIFO and a single timer is armed for the oldest one
        (libev's "be smart about timeouts", its fourth strategy). Finished jobs leave from the
        front as calls come and the timer fires; the writer settles in FIFO order, so the FIFO
        holds about the jobs in flight.
        """
        waiting = self._waiting
        while waiting and waiting[0].future.done():
            waiting.popleft()
        waiting.append(job)
        if self._timer is None:
            self._timer = loop.call_later(waiting[0].deadline - time.monotonic(), self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail every waiting job past its deadline with `InboxError`; arm the timer for the next one."""
        self._timer = None
        waiting, now = self._waiting, time.monotonic()
        while waiting and (waiting[0].future.done() or waiting[0].deadline <= now):
            job = waiting.popleft()
            if not job.future.done():
                job.future.set_exception(
                    InboxError(
                        f"the SQLite inbox {self.path!r} did not commit within {self.commit_timeout:g} s "
                        "(its database lock is held elsewhere, or the disk is stalled)"
                    )
                )
        if waiting:
            self._timer = loop.call_later(waiting[0].deadline - time.monotonic(), self._expire, loop)

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``read`` on a connection of its own (it passes a held write lock), within ``commit_timeout``."""
        if self._closed:
            raise InboxError("the inbox is closed")

        def run() -> T:
            conn = self._connect(writer=False)
            try:
                return read(conn)
            finally:
                conn.close()

        try:
            async with asyncio.timeout(self.commit_timeout):
                return await asyncio.to_thread(run)
        except TimeoutError:
            raise InboxError(
                f"the SQLite inbox {self.path!r} did not answer within {self.commit_timeout:g} s"
            ) from None
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None

    async def put(
        self, body: bytes, *, org_id: str, signed_at: float | None = None, traceparent: str | None = None
    ) -> bool:
        """Store a verified delivery; ``False`` if its key was already stored."""
        now = self.clock()
        key = delivery_key(org_id, body)
        row = (key, org_id, body, signed_at, now, now, traceparent, event_type_of(body))
        purge = self._purge_due()

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO fullstory_inbox (key, org_id, body, signed_at, received_at, next_attempt_at, "
                "traceparent, event_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if purge:
                self._purge(conn, now)
            return cursor.rowcount == 1

        stored = await self._call(insert, one_statement=not purge)
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

    async def _settle(
        self, record: InboxRecord, assignments: str, *params: Any, attempt: InboxAttempt | None = None
    ) -> bool:
        sql = f"UPDATE fullstory_inbox SET {assignments} WHERE key = ? AND status = 'pending' AND next_attempt_at = ?"

        def settle(conn: sqlite3.Connection) -> bool:
            applied = conn.execute(sql, (*params, record.key, record.next_attempt_at)).rowcount == 1
            if applied and attempt is not None:
                _add_attempt(conn, record.key, attempt)
            return applied

        return await self._call(settle)

    async def complete(self, record: InboxRecord, *, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``done`` (if this claim still holds it), adding ``attempt`` to its history."""
        assignments = "status = 'done', processed_at = ?, last_error = NULL"
        return await self._settle(record, assignments, self.clock(), attempt=attempt)

    async def retry(
        self, record: InboxRecord, *, error: str, delay: float, attempt: InboxAttempt | None = None
    ) -> bool:
        """Make a claimed event due again in ``delay`` seconds (if this claim still holds it)."""
        return await self._settle(
            record, "next_attempt_at = ?, last_error = ?", self.clock() + delay, error, attempt=attempt
        )

    async def bury(self, record: InboxRecord, *, error: str, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``dead`` (if this claim still holds it)."""
        assignments = "status = 'dead', processed_at = ?, last_error = ?"
        return await self._settle(record, assignments, self.clock(), error, attempt=attempt)

    async def get(self, key: str) -> InboxEntry | None:
        """Return the event stored under ``key`` with its history (read as `stats` is)."""
        self._check_key(key)

        def read(conn: sqlite3.Connection) -> InboxEntry | None:
            row = conn.execute(f"SELECT {COLUMNS} FROM fullstory_inbox WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            sql = f"SELECT {_ATTEMPT_COLUMNS} FROM fullstory_inbox_attempts WHERE key = ? ORDER BY id"
            return InboxEntry(_record(row), tuple(InboxAttempt(*line) for line in conn.execute(sql, (key,))))

        return await self._read(read)

    def page_query(self, filters: InboxFilter, after: tuple[float, str] | None, limit: int) -> tuple[str, list[object]]:
        """Return the SQL and parameters of one `Inbox.list` page (the query-plan tests read it)."""
        params = Params("?")
        return page_sql(COLUMNS, filters, after, limit, params), params.values

    async def _page(self, filters: InboxFilter, after: tuple[float, str] | None, limit: int) -> list[InboxRecord]:
        sql, values = self.page_query(filters, after, limit)
        return await self._read(lambda conn: [_record(row) for row in conn.execute(sql, values)])

    async def _counts(self, filters: list[InboxFilter]) -> list[int]:
        params = Params("?")
        sql = counts_sql(filters, params)
        return list(await self._read(lambda conn: conn.execute(sql, params.values).fetchone()))

    async def _replay_batch(
        self, filters: InboxFilter, after: tuple[float, str] | None, limit: int
    ) -> tuple[int, int, tuple[float, str] | None]:
        params = Params("?")
        sql = replay_batch_sql(filters, after, limit, params)
        now = self.clock()

        def replay(conn: sqlite3.Connection) -> tuple[int, int, tuple[float, str] | None]:
            rows = conn.execute(sql, params.values).fetchall()
            keys = [key for _, key, status in rows if status != "pending"]
            changed = 0
            if keys:
                update = (
                    "UPDATE fullstory_inbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
                    f"processed_at = NULL WHERE key IN ({', '.join('?' * len(keys))}) AND status != 'pending'"
                )
                changed = conn.execute(update, [now, *keys]).rowcount
            return len(rows), changed, (rows[-1][0], rows[-1][1]) if len(rows) > limit else None

        return await self._call(replay)

    async def stats(self) -> InboxStats:
        """Count the events in each state, up to `STATS_CAP` each (on a connection of its own: it passes a lock)."""
        params = Params("?")
        sql = stats_sql(_inbox.STATS_CAP, params)

        def count(conn: sqlite3.Connection) -> InboxStats:
            pending, done, dead = conn.execute(sql, params.values).fetchone()
            (oldest,) = conn.execute("SELECT min(received_at) FROM fullstory_inbox WHERE status = 'pending'").fetchone()
            age = None if oldest is None else max(0.0, self.clock() - oldest)
            capped = max(pending, done, dead) >= _inbox.STATS_CAP
            return InboxStats(pending, done, dead, oldest, age, capped)

        return await self._read(count)

    async def ready(self) -> bool:
        """Tell whether an (empty) transaction commits within ``commit_timeout``: the write lock is free."""
        try:
            await self._call(lambda _conn: None)
        except InboxError:
            return False
        return True

    async def export(self) -> AsyncIterator[InboxRecord]:
        """Every stored event, in the order received, a page at a time (each page read as `stats` is)."""
        after: tuple[float, str] = (float("-inf"), "")
        sql = f"SELECT {COLUMNS} FROM fullstory_inbox WHERE (received_at, key) > (?, ?) ORDER BY received_at, key"
        sql += " LIMIT ?"
        while True:
            params = (*after, _EXPORT_PAGE)

            def page_of(conn: sqlite3.Connection, params: tuple[object, ...] = params) -> list[InboxRecord]:
                return [_record(row) for row in conn.execute(sql, params)]

            page = await self._read(page_of)
            for record in page:
                yield record
            if len(page) < _EXPORT_PAGE:
                return
            after = (page[-1].received_at, page[-1].key)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        if self.retention is None:
            return 0
        expired = "status = 'done' AND processed_at < ?"
        before = (now - self.retention,)
        conn.execute(
            f"DELETE FROM fullstory_inbox_attempts WHERE key IN (SELECT key FROM fullstory_inbox WHERE {expired})",
            before,
        )
        return conn.execute(f"DELETE FROM fullstory_inbox WHERE {expired}", before).rowcount

    async def purge(self) -> int:
        """Delete ``done`` events processed more than ``retention`` seconds ago."""
        now = self.clock()
        return await self._call(lambda conn: self._purge(conn, now))

    async def aclose(self) -> None:
        """Let queued writes commit (each within its bound), then stop the writer thread (idempotent)."""
        await self._stop_backfill()
        already, self._closed = self._closed, True
        if already or self._stopped is None:
            return
        self._jobs.put(None)
        await asyncio.shield(self._stopped)

    async def release(self, record: InboxRecord) -> bool:
        """Give a claimed event back unrun, due now, its attempt uncounted (if this claim still holds it)."""
        return await self._settle(record, "attempts = attempts - 1, next_attempt_at = ?", self.clock())

    async def activity(self) -> InboxActivity:
        """Return the last day, a minute at a time (`read_activity`; read on connections of their own, as `stats`)."""

        async def fetch(sql: str, values: list[object]) -> list[Any]:
            return await self._read(lambda conn: conn.execute(sql, values).fetchall())

        return await read_activity(self.clock(), "?", fetch)


_ATTEMPT_COLUMNS = "attempt, started_at, duration, outcome, detail"


def _add_attempt(conn: sqlite3.Connection, key: str, attempt: InboxAttempt) -> None:
    """Add a run to an event's history and delete its runs older than the last `HISTORY_KEPT`."""
    conn.execute(
        f"INSERT INTO fullstory_inbox_attempts (key, {_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (key, attempt.attempt, attempt.started_at, attempt.duration, attempt.outcome, attempt.detail),
    )
    conn.execute(
        "DELETE FROM fullstory_inbox_attempts WHERE key = ? AND id <= (SELECT id FROM fullstory_inbox_attempts "
        "WHERE key = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (key, key, HISTORY_KEPT),
    )


def _backfill_batch(conn: sqlite3.Connection) -> bool:
    """Fill the event type of the next `BACKFILL_BATCH` keys; return True once there is nothing left to fill."""
    progress = conn.execute(f"SELECT after_key FROM {BACKFILL_TABLE}").fetchone()
    if progress is None:
        return True
    sql = "SELECT key, body FROM fullstory_inbox WHERE key > ? AND event_type IS NULL ORDER BY key LIMIT ?"
    rows = conn.execute(sql, (progress[0], BACKFILL_BATCH)).fetchall()
    types = [(name, key) for key, body in rows if (name := event_type_of(bytes(body))) is not None]
    conn.executemany("UPDATE fullstory_inbox SET event_type = ? WHERE key = ?", types)
    if len(rows) < BACKFILL_BATCH:
        conn.execute(f"DELETE FROM {BACKFILL_TABLE}")
        return True
    conn.execute(f"UPDATE {BACKFILL_TABLE} SET after_key = ?", (rows[-1][0],))
    return False


def _settle_all(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        _settle(*outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the write happened (or not) all the same
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
