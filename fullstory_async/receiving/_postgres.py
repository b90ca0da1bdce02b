"""The PostgreSQL inbox (asyncpg, ``pip install 'fullstory-async[postgres]'``), for many receiver instances.

Every instance (receivers and workers alike) connects to one database. ``put`` is an
``INSERT ... ON CONFLICT DO NOTHING`` committed before it returns, so a delivery is stored
once whichever instance gets it. ``claim`` takes due events with ``FOR UPDATE SKIP
LOCKED``, so concurrent workers never block on, nor take, each other's events. The
schema is created or migrated under an advisory lock, so instances may start together.
Every time written or compared (received, lease end, retry, purge) is the database's
clock (``now()``), so workers on machines whose clocks disagree share leases correctly.

Bounded waits: every call (pool acquire, connect, statement) finishes or fails with
`InboxError` within ``commit_timeout``; the caller is answered at that bound while the
abandoned call is cancelled in the background (asyncpg's ``command_timeout`` cancels the
query, the server's ``statement_timeout`` ends it on the server side too). A connection
broken meanwhile is replaced by the pool on a later call, so the inbox recovers by itself
when the database returns. Each inbox keeps a pool of up to `POOL_SIZE` (10) connections.
Passwords never appear in a message or a repr: the DSN is shown (`redact`) with ``***`` for its
user-info password and every ``password``-like query parameter (``password``, ``passfile``, ``sslpassword``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, unquote_plus, urlsplit

from fullstory_async._exceptions import InvalidArgumentError
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

if TYPE_CHECKING:
    import asyncpg

MIGRATION_TIMEOUT = 900.0
"""Seconds a schema change may take (building schema 3's indexes on a large inbox), beyond ``commit_timeout``.

Only the statements of a migration get it; everything before (connecting, reading the
version, waiting for another instance's migration) keeps ``commit_timeout``.
"""

POOL_SIZE = 10
"""Connections one inbox holds at most (calls beyond wait for one, within ``commit_timeout``)."""
_REFUSED_PARAMETER = ("42704", "22023")  # undefined_object, invalid_parameter_value: a bad URL parameter
T = TypeVar("T")
_LOCK_ID = 0x46534941  # "FSIA": serialises schema migrations across instances
_MIGRATION_LOCK_TIMEOUT = 1.0
"""Seconds a migration's ``ALTER TABLE`` may wait for the inbox's lock. While it waits, every later
statement on the table (every instance's deliveries) queues behind it, so it gives up quickly (the
``lock_timeout`` pattern of online PostgreSQL migrations) rather than stall the receivers for as
long as another session keeps a transaction open."""
_EXPORT_PAGE = 500
_MIGRATIONS = migrations(
    blob="BYTEA", real="DOUBLE PRECISION", serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
)


_SECRET_KEY = re.compile(r"pass|secret|token|pwd", re.IGNORECASE)  # password, passfile, sslpassword, ...


def _userinfo(dsn: str) -> tuple[int, int] | None:
    """Return where the password of ``dsn``'s user info starts and ends in the text, or ``None``.

    The user info ends at the last ``@`` before the query. A password may hold an unencoded
    ``/``, ``?`` or ``#`` (generated passwords often do), which ends the authority early for a
    URL parser (``u:pa/ss@h`` parses as host ``u``, port ``pa``); a ``?`` in it puts its ``@``
    in what looks like the query, then in a parameter without ``=``, or after a port that is not
    a number (``u:pa?ss@h``). When in doubt this hides too much, never too little.
    """
    _, sep, rest = dsn.partition("://")
    if not sep or rest[:1] in ("", "/", "?", "#"):  # sqlite:////path, postgresql:///db: no user info
        return None
    path, _, query = rest.partition("?")
    at = path.rfind("@")
    if at < 0 and "@" in query:
        port = re.split(r"[/#]", path, maxsplit=1)[0].rpartition(":")[2]
        if not port.isdigit() or "=" not in query[: query.index("@")].rpartition("&")[2]:
            at = len(path) + 1 + query.rindex("@")
    user, colon, _ = rest[: max(at, 0)].partition(":")
    if at < 0 or not colon:
        return None
    offset = len(dsn) - len(rest)
    return offset + len(user) + 1, offset + at


def _secrets(dsn: str) -> list[str]:
    """Return the secret values a DSN carries (user-info password, ``password``-like query values), raw and decoded."""
    span = _userinfo(dsn)
    found = [dsn[span[0] : span[1]]] if span else []
    for pair in dsn.partition("?")[2].partition("#")[0].split("&"):
        key, _, value = pair.partition("=")
        if _SECRET_KEY.search(unquote_plus(key)):
            found.append(value)
    found += [unquote_plus(value) for value in found] + [unquote(value) for value in found]
    return sorted({value for value in found if value}, key=len, reverse=True)


def redact(dsn: str) -> str:
    """Return the URL as given, but its user-info password and ``password``-like query values as ``***``."""
    span = _userinfo(dsn)
    if span is not None:
        dsn = f"{dsn[: span[0]]}***{dsn[span[1] :]}"
    head, sep, query = dsn.partition("?")  # edit the text as given: urlunsplit would drop sqlite:///'s empty host
    query, hash_, fragment = query.partition("#")
    query = "&".join(
        f"{key}=***" if _SECRET_KEY.search(unquote_plus(key)) else f"{key}{eq}{value}"
        for key, eq, value in (pair.partition("=") for pair in query.split("&"))
    )
    return head + sep + query + hash_ + fragment


def check_dsn(dsn: str) -> None:
    """Refuse (`InvalidArgumentError` on ``url``, password redacted) a PostgreSQL URL whose host part is malformed."""
    try:
        netloc = urlsplit(dsn).netloc
    except ValueError as exc:
        raise InvalidArgumentError("url", f"malformed PostgreSQL URL {redact(dsn)}: {exc}") from None
    span = _userinfo(dsn)
    if span is not None and any(mark in dsn[span[0] : span[1]] for mark in "/?#"):  # a URL parser misreads it
        raise InvalidArgumentError(
            "url",
            f"the user info of {redact(dsn)} holds an unencoded '/', '?' or '#': percent-encode them in the "
            "password (%2F, %3F, %23)",
        )
    for host in netloc.rpartition("@")[2].split(","):  # asyncpg takes several host[:port], comma-separated
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] else ""
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise InvalidArgumentError("url", f"port {port!r} is not a port number (1-65535) in {redact(dsn)}")


def hide(text: str, dsn: str) -> str:
    """Return ``text`` with the DSN redacted and every secret value the DSN carries replaced by ``***``."""
    text = text.replace(dsn, redact(dsn))
    for secret in _secrets(dsn):
        text = text.replace(secret, "***")
    return text


def _at(n: int) -> str:
    """Return SQL for the time in parameter ``$n``, or the database's clock when it is NULL."""
    return f"coalesce(${n}::double precision, extract(epoch from now())::double precision)"


def _record(row: Any) -> InboxRecord:
    return InboxRecord(
        row["key"],
        row["org_id"],
        bytes(row["body"]),
        row["received_at"],
        row["status"],
        row["attempts"],
        row["signed_at"],
        row["last_error"],
        row["next_attempt_at"],
        row["traceparent"],
        row["event_type"],
    )


class PostgresInbox(Inbox):
    """An `Inbox` in a PostgreSQL database (open it with `open_inbox`)."""

    def __init__(
        self,
        dsn: str,
        *,
        retention: float | None,
        clock: Callable[[], float] | None = None,
        commit_timeout: float = DEFAULT_COMMIT_TIMEOUT,
        create: bool = True,
    ) -> None:
        super().__init__(retention=retention, clock=clock or time.time, commit_timeout=commit_timeout)
        check_dsn(dsn)
        self._db_clock = clock is None
        self._dsn = dsn
        self.create = create
        self._pool: asyncpg.Pool[Any] | None = None
        self._abandoned: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"<PostgresInbox dsn={redact(self._dsn)!r}>"

    def _hide(self, exc: BaseException) -> str:
        return hide(f"{type(exc).__name__}: {exc}", self._dsn)

    async def open(self) -> None:
        """Connect, then create or migrate the schema (with ``create=False``: check it), within the bound."""
        try:
            import asyncpg
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise InboxError("a PostgreSQL inbox needs asyncpg: pip install 'fullstory-async[postgres]'") from None
        try:
            self._pool = await self._bounded(
                asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=POOL_SIZE,
                    timeout=self.commit_timeout,  # to connect
                    command_timeout=self.commit_timeout,  # asyncpg cancels a longer statement
                    server_settings={"statement_timeout": str(max(1, round(self.commit_timeout * 1000)))},
                ),
                "connect to",
            )
            await self._bounded(self._prepare_schema(), "open", timeout=MIGRATION_TIMEOUT)
            if self.create:  # schema 3's event types, filled in the background so deliveries keep committing
                await self._start_backfill(lambda: self._transact(_backfill_batch))
        except InboxError:
            await self.aclose()
            raise
        except asyncpg.LockNotAvailableError:
            await self.aclose()
            raise InboxError(
                f"cannot migrate the PostgreSQL inbox {redact(self._dsn)} to schema version {SCHEMA_VERSION}: "
                f"another session held a lock on its tables for {_MIGRATION_LOCK_TIMEOUT:g} s (a transaction left "
                "open?); nothing changed, deliveries went on: end that session (pg_stat_activity) and open it again"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.aclose()
            if isinstance(exc, ValueError) or getattr(exc, "sqlstate", None) in _REFUSED_PARAMETER:
                raise InvalidArgumentError(
                    "url", f"a parameter of {redact(self._dsn)} was refused: {self._hide(exc)}"
                ) from None
            raise InboxError(f"cannot open the PostgreSQL inbox {redact(self._dsn)}: {self._hide(exc)}") from None
        except (OSError, ValueError) as exc:
            await self.aclose()
            raise InboxError(f"cannot open the PostgreSQL inbox {redact(self._dsn)}: {self._hide(exc)}") from None

    async def _prepare_schema(self) -> None:
        """Check the schema; create or migrate it (under the advisory lock) only when needed and allowed.

        An up-to-date inbox is opened without DDL, so a role with only the documented grants opens it.
        """
        assert self._pool is not None
        version_sql = "SELECT coalesce(max(version), 0) FROM fullstory_inbox_schema"
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval("SELECT to_regclass('fullstory_inbox_schema')") is not None
            version = await conn.fetchval(version_sql) if exists else 0
            check_schema_version(version)
            if version == SCHEMA_VERSION:
                return
            if not self.create:
                if not exists:
                    raise InboxError(
                        f"the database {redact(self._dsn)} has no fullstory-async inbox (no inbox tables); "
                        "nothing changed"
                    )
                raise InboxError(
                    f"the inbox {redact(self._dsn)} has schema version {version}: open it once with receive "
                    "or open_inbox to migrate it"
                )
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            await conn.execute(f"SET LOCAL lock_timeout = {round(_MIGRATION_LOCK_TIMEOUT * 1000)}")  # after it
            await conn.execute("CREATE TABLE IF NOT EXISTS fullstory_inbox_schema (version INTEGER NOT NULL)")
            version = await conn.fetchval(version_sql)  # another instance may have migrated meanwhile
            check_schema_version(version)
            await conn.execute("SET LOCAL statement_timeout = 0")  # index builds on a large inbox take their time
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    await conn.execute(statement, timeout=MIGRATION_TIMEOUT)
                await conn.execute("INSERT INTO fullstory_inbox_schema (version) VALUES ($1)", target)

    async def _bounded(self, call: Awaitable[T], doing: str, *, timeout: float | None = None) -> T:
        """Await ``call`` at most ``timeout`` (at least ``commit_timeout``); past it, cancel it and raise."""
        timeout = max(timeout or 0.0, self.commit_timeout)
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        finally:
            if not task.done():  # timed out, or our caller was cancelled: do not wait for asyncpg's cleanup
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(_forget(self._abandoned))
        if not done:
            raise InboxError(f"cannot {doing} the PostgreSQL inbox {redact(self._dsn)}: no answer within {timeout:g} s")
        return task.result()

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        if self._pool is None:
            raise InboxError("the inbox is closed")
        import asyncpg

        try:
            return await self._bounded(getattr(self._pool, method)(sql, *args), "use")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise InboxError(f"PostgreSQL inbox call failed: {self._hide(exc)}") from None

    async def _transact(self, work: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction on a pooled connection, within ``commit_timeout`` (as `_run`)."""
        if self._pool is None:
            raise InboxError("the inbox is closed")
        import asyncpg

        pool = self._pool

        async def run() -> T:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)

        try:
            return await self._bounded(run(), "use")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise InboxError(f"PostgreSQL inbox call failed: {self._hide(exc)}") from None

    def _now(self) -> float | None:
        """Return the time to write, or ``None`` for the database's clock (`_at`) unless a clock was given."""
        return None if self._db_clock else self.clock()

    async def _execute(self, sql: str, *args: Any) -> int:
        status: str = await self._run("execute", sql, *args)
        return int(status.rpartition(" ")[2])

    async def put(
        self, body: bytes, *, org_id: str, signed_at: float | None = None, traceparent: str | None = None
    ) -> bool:
        """Store a verified delivery; ``False`` if its key was already stored."""
        stored = await self._execute(
            "INSERT INTO fullstory_inbox (key, org_id, body, signed_at, received_at, next_attempt_at, traceparent, "
            f"event_type) VALUES ($1, $2, $3, $4, {_at(5)}, {_at(5)}, $6, $7) ON CONFLICT (key) DO NOTHING",
            delivery_key(org_id, body),
            org_id,
            body,
            signed_at,
            self._now(),
            traceparent,
            event_type_of(body),
        )
        if self._purge_due():
            await self.purge()
        if stored:
            self.arrival.set()
        return bool(stored)

    async def claim(self, limit: int, *, lease: float, max_attempts: int | None = None) -> list[InboxRecord]:
        """Take up to ``limit`` due pending events (``FOR UPDATE SKIP LOCKED``) for ``lease`` seconds."""
        update = claim_update(now=_at(1), lease_until=f"({_at(1)} + $2)", max_attempts="$3::integer", error="$4::text")
        rows = await self._run(
            "fetch",
            f"{update} WHERE key IN (SELECT key FROM fullstory_inbox WHERE status = 'pending' "
            f"AND next_attempt_at <= {_at(1)} ORDER BY next_attempt_at, received_at LIMIT $5 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {COLUMNS}",
            self._now(),
            float(lease),
            max_attempts or NO_LIMIT,
            NEVER_FINISHED,
            limit,
        )
        return sorted((_record(row) for row in rows), key=lambda record: record.received_at)

    async def _settle(
        self, record: InboxRecord, assignments: str, *args: Any, attempt: InboxAttempt | None = None
    ) -> bool:
        sql = f"UPDATE fullstory_inbox SET {assignments} WHERE key = $1 AND status = 'pending' AND next_attempt_at = $2"
        if attempt is None:
            return bool(await self._execute(sql, record.key, record.next_attempt_at, *args))

        async def settle(conn: asyncpg.Connection[Any]) -> bool:
            status: str = await conn.execute(sql, record.key, record.next_attempt_at, *args)
            applied = status.endswith(" 1")
            if applied:
                await _add_attempt(conn, record.key, attempt)
            return applied

        return await self._transact(settle)

    async def complete(self, record: InboxRecord, *, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``done`` (if this claim still holds it), adding ``attempt`` to its history."""
        assignments = f"status = 'done', processed_at = {_at(3)}, last_error = NULL"
        return await self._settle(record, assignments, self._now(), attempt=attempt)

    async def retry(
        self, record: InboxRecord, *, error: str, delay: float, attempt: InboxAttempt | None = None
    ) -> bool:
        """Make a claimed event due again in ``delay`` seconds (if this claim still holds it)."""
        assignments = f"next_attempt_at = {_at(3)} + $4, last_error = $5"
        return await self._settle(record, assignments, self._now(), float(delay), error, attempt=attempt)

    async def bury(self, record: InboxRecord, *, error: str, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``dead`` (if this claim still holds it)."""
        assignments = f"status = 'dead', processed_at = {_at(3)}, last_error = $4"
        return await self._settle(record, assignments, self._now(), error, attempt=attempt)

    async def get(self, key: str) -> InboxEntry | None:
        """Return the event stored under ``key`` with its history."""
        self._check_key(key)

        async def read(conn: asyncpg.Connection[Any]) -> InboxEntry | None:
            row = await conn.fetchrow(f"SELECT {COLUMNS} FROM fullstory_inbox WHERE key = $1", key)
            if row is None:
                return None
            sql = f"SELECT {_ATTEMPT_COLUMNS} FROM fullstory_inbox_attempts WHERE key = $1 ORDER BY id"
            history = tuple(InboxAttempt(*line) for line in await conn.fetch(sql, key))
            return InboxEntry(_record(row), history)

        return await self._transact(read)

    def page_query(self, filters: InboxFilter, after: tuple[float, str] | None, limit: int) -> tuple[str, list[object]]:
        """Return the SQL and parameters of one `Inbox.list` page (the query-plan tests read it)."""
        params = Params("$")
        return page_sql(COLUMNS, filters, after, limit, params), params.values

    async def _page(self, filters: InboxFilter, after: tuple[float, str] | None, limit: int) -> list[InboxRecord]:
        sql, values = self.page_query(filters, after, limit)
        return [_record(row) for row in await self._run("fetch", sql, *values)]

    async def _counts(self, filters: list[InboxFilter]) -> list[int]:
        params = Params("$")
        sql = counts_sql(filters, params)
        return list(await self._run("fetchrow", sql, *params.values))

    async def _replay_batch(
        self, filters: InboxFilter, after: tuple[float, str] | None, limit: int
    ) -> tuple[int, int, tuple[float, str] | None]:
        params = Params("$")
        sql = replay_batch_sql(filters, after, limit, params)

        async def replay(conn: asyncpg.Connection[Any]) -> tuple[int, int, tuple[float, str] | None]:
            rows = await conn.fetch(sql, *params.values)
            keys = [row["key"] for row in rows if row["status"] != "pending"]
            changed = "0"
            if keys:
                changed = await conn.execute(
                    f"UPDATE fullstory_inbox SET status = 'pending', attempts = 0, next_attempt_at = {_at(1)}, "
                    "processed_at = NULL WHERE key = ANY($2::text[]) AND status <> 'pending'",
                    self._now(),
                    keys,
                )
            last = (rows[-1]["received_at"], rows[-1]["key"]) if len(rows) > limit else None
            return len(rows), int(changed.rpartition(" ")[2]), last

        return await self._transact(replay)

    async def stats(self) -> InboxStats:
        """Count the events in each state, up to `STATS_CAP` each."""
        params = Params("$")
        pending, done, dead = await self._run("fetchrow", stats_sql(_inbox.STATS_CAP, params), *params.values)
        oldest = await self._run(
            "fetchrow",
            f"SELECT min(received_at) AS at, greatest(0, {_at(1)} - min(received_at)) AS age FROM fullstory_inbox "
            "WHERE status = 'pending'",
            self._now(),
        )
        capped = max(pending, done, dead) >= _inbox.STATS_CAP
        return InboxStats(pending, done, dead, oldest["at"], oldest["age"], capped)

    async def ready(self) -> bool:
        """Tell whether the database answers a query on the inbox table within ``commit_timeout``."""
        try:
            await self._run("fetchval", "SELECT count(*) FROM (SELECT 1 FROM fullstory_inbox LIMIT 1) AS probe")
        except InboxError:
            return False
        return True

    async def export(self) -> AsyncIterator[InboxRecord]:
        """Every stored event, in the order received, a page at a time."""
        after: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = await self._run(
                "fetch",
                f"SELECT {COLUMNS} FROM fullstory_inbox WHERE (received_at, key) > ($1, $2) "
                "ORDER BY received_at, key LIMIT $3",
                *after,
                _EXPORT_PAGE,
            )
            for row in rows:
                yield _record(row)
            if len(rows) < _EXPORT_PAGE:
                return
            after = (rows[-1]["received_at"], rows[-1]["key"])

    async def purge(self) -> int:
        """Delete ``done`` events processed more than ``retention`` seconds ago."""
        if self.retention is None:
            return 0
        sql = (
            f"WITH gone AS (DELETE FROM fullstory_inbox WHERE status = 'done' AND processed_at < {_at(1)} - $2 "
            "RETURNING key), history AS (DELETE FROM fullstory_inbox_attempts WHERE key IN (SELECT key FROM gone)) "
            "SELECT count(*) FROM gone"
        )
        return int(await self._run("fetchval", sql, self._now(), self.retention))

    async def aclose(self) -> None:
        """Close the connection pool, within ``commit_timeout`` (then terminate it) (idempotent)."""
        await self._stop_backfill()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.commit_timeout)
        except TimeoutError:
            pool.terminate()  # a frozen server: do not wait for its goodbye

    async def release(self, record: InboxRecord) -> bool:
        """Give a claimed event back unrun, due now, its attempt uncounted (if this claim still holds it)."""
        return await self._settle(record, f"attempts = attempts - 1, next_attempt_at = {_at(3)}", self._now())

    async def activity(self) -> InboxActivity:
        """Return the last day, a minute at a time (`read_activity`), by the inbox's clock (the database's)."""
        now = self._now()
        if now is None:
            now = float(await self._run("fetchval", "SELECT extract(epoch from now())::double precision"))

        async def fetch(sql: str, values: list[object]) -> list[Any]:
            rows: list[Any] = await self._run("fetch", sql, *values)
            return rows

        return await read_activity(now, "$", fetch)


_ATTEMPT_COLUMNS = "attempt, started_at, duration, outcome, detail"


async def _add_attempt(conn: asyncpg.Connection[Any], key: str, attempt: InboxAttempt) -> None:
    """Add a run to an event's history and delete its runs older than the last `HISTORY_KEPT`."""
    await conn.execute(
        f"INSERT INTO fullstory_inbox_attempts (key, {_ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
        key,
        attempt.attempt,
        attempt.started_at,
        attempt.duration,
        attempt.outcome,
        attempt.detail,
    )
    await conn.execute(
        "DELETE FROM fullstory_inbox_attempts WHERE key = $1 AND id <= (SELECT id FROM fullstory_inbox_attempts "
        "WHERE key = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        key,
        HISTORY_KEPT,
    )


async def _backfill_batch(conn: asyncpg.Connection[Any]) -> bool:
    """Fill the event type of the next `BACKFILL_BATCH` keys; return True once there is nothing left to fill."""
    after = await conn.fetchval(f"SELECT after_key FROM {BACKFILL_TABLE} FOR UPDATE")  # one instance at a time
    if after is None:
        return True
    rows = await conn.fetch(
        "SELECT key, body FROM fullstory_inbox WHERE key > $1 AND event_type IS NULL ORDER BY key LIMIT $2",
        after,
        BACKFILL_BATCH,
    )
    types = [(name, row["key"]) for row in rows if (name := event_type_of(bytes(row["body"]))) is not None]
    await conn.executemany("UPDATE fullstory_inbox SET event_type = $1 WHERE key = $2", types)
    if len(rows) < BACKFILL_BATCH:
        await conn.execute(f"DELETE FROM {BACKFILL_TABLE}")
        return True
    await conn.execute(f"UPDATE {BACKFILL_TABLE} SET after_key = $1", rows[-1]["key"])
    return False


def _forget(tasks: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    """Return a done callback that drops an abandoned call and retrieves its outcome (nobody else will)."""

    def done(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done
