"""The inbox: a durable store of verified deliveries, one interface over SQLite and PostgreSQL.

A delivery is stored once per *delivery key*, the SHA-256 of its org id and raw body
(never the signature timestamp, so a redelivery re-signed later is the same delivery).
Each stored event is ``pending`` until a worker completes it (``done``) or gives up on
it (``dead``). A claimable event is ``pending`` with ``next_attempt_at`` in the past:
claiming moves ``next_attempt_at`` forward by the lease (so a crashed worker's events
come back), a failure moves it to the retry time. ``done`` events (and with them their
dedupe keys) are purged ``retention`` seconds after they were processed.

The design is a *transactional inbox* (the receiving half of the transactional outbox
pattern): a delivery is acknowledged only once its row is committed, and de-duplication by
key makes the sender's retries idempotent. Every operation has a *bounded wait*: it
finishes, or fails with `InboxError`, within ``commit_timeout`` seconds (a locked, frozen or
unreachable database costs a caller that long and no longer). A write that commits after
its caller gave up is harmless: a delivery answered ``503`` and committed later is
de-duplicated when the sender retries.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import builtins
import contextlib
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

from fullstory_async._exceptions import FullstoryError, InvalidArgumentError
from fullstory_async.receiving._activity import InboxActivity
from fullstory_async.receiving._query import (
    InboxEntry,
    InboxFilter,
    InboxPage,
    ReplayResult,
    check_limit,
    decode_cursor,
    encode_cursor,
    storable,
)

logger = logging.getLogger("fullstory_async.receiving")

Status = Literal["pending", "done", "dead"]
SCHEMA_VERSION = 3
"""The inbox schema this version of the SDK writes; older schemas are migrated forward on open."""

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds a processed event (and its dedupe key) is kept: 7 days."""

DEFAULT_COMMIT_TIMEOUT = 5.0
"""Seconds an inbox operation may take before it fails (`InboxError`): a receiver answers ``503``."""

_PURGE_EVERY = 60.0

COLUMNS = (
    "key, org_id, body, received_at, status, attempts, signed_at, last_error, next_attempt_at, traceparent, event_type"
)
"""The columns an `InboxRecord` is read from, in its field order."""


def check_schema_version(version: int) -> None:
    """Refuse an inbox written by a newer SDK rather than guess at its schema."""
    if version > SCHEMA_VERSION:
        raise InboxError(f"the inbox has schema version {version}, newer than this SDK's {SCHEMA_VERSION}: upgrade")


def migrations(*, blob: str, real: str, serial: str) -> dict[int, tuple[str, ...]]:
    """Return the statements that bring the schema to each version, in an engine's type names.

    ``serial`` is an engine's auto-numbered primary key column type.
    """
    return {
        1: (
            f"""CREATE TABLE fullstory_inbox (
                key TEXT PRIMARY KEY,
                org_id TEXT NOT NULL,
                body {blob} NOT NULL,
                signed_at {real},
                received_at {real} NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending',
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at {real} NOT NULL,
                processed_at {real},
                last_error TEXT
            )""",
            "CREATE INDEX fullstory_inbox_due ON fullstory_inbox (status, next_attempt_at)",
        ),
        # The W3C traceparent of the delivery's span, so a handler run's span links to it.
        2: ("ALTER TABLE fullstory_inbox ADD COLUMN traceparent TEXT",),
        # The event type as a column (filled in batches by the backfill, `BACKFILL_TABLE`), an index
        # for newest-first listing and for each filter (`InboxFilter`), and the attempt history.
        3: (
            "ALTER TABLE fullstory_inbox ADD COLUMN event_type TEXT",
            "CREATE INDEX fullstory_inbox_received ON fullstory_inbox (received_at, key)",
            "CREATE INDEX fullstory_inbox_status_received ON fullstory_inbox (status, received_at, key)",
            # status last: the order stays (event_type, received_at, key), and a replay's counts read the index alone
            "CREATE INDEX fullstory_inbox_type_received ON fullstory_inbox (event_type, received_at, key, status)",
            f"""CREATE TABLE fullstory_inbox_attempts (
                id {serial},
                key TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                started_at {real} NOT NULL,
                duration {real} NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT
            )""",
            "CREATE INDEX fullstory_inbox_attempts_key ON fullstory_inbox_attempts (key, id)",
            f"CREATE TABLE {BACKFILL_TABLE} (after_key TEXT NOT NULL)",
            f"INSERT INTO {BACKFILL_TABLE} (after_key) VALUES ('')",
        ),
    }


BACKFILL_TABLE = "fullstory_inbox_backfill"
"""Schema 3's backfill of ``event_type``: one row, the last key filled (keys in order), while it runs; none after.

The row is deleted, not the table dropped, so a role without ownership (the documented grants) finishes it.
"""

BACKFILL_BATCH = 500
"""Rows the backfill fills per transaction: short enough that deliveries keep committing between batches."""

BACKFILL_RETRY = 1.0
"""Seconds the backfill first waits before trying a batch again after an `InboxError` (doubled each time, to 60)."""

REPLAY_BATCH = 100
"""Events `Inbox.replay` reads and replays per transaction. A delivery that arrives meanwhile waits for the
batch (on SQLite it joins the next one): 100 take a few milliseconds, about 25 ms on 2 overloaded cores."""

STATS_CAP = 100_000
"""Events `Inbox.stats` counts at most in each state: a count that reaches it means at least that many
(`InboxStats.capped`). Counting stops there, so a scrape costs the same on an inbox of any size (about
10 ms per state at the cap); below it, where alerts on a backlog or dead letters sit, counts are exact."""

HISTORY_KEPT = 20
"""Attempts of an event kept in its history (the older ones are deleted as new ones are recorded)."""


def event_type_of(body: bytes) -> str | None:
    """Return the ``eventName`` of a JSON object body, ``None`` for any other body or a name no engine stores."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8 (UnicodeDecodeError), not JSON, absurdly nested
        return None
    name = event.get("eventName") if isinstance(event, dict) else None
    return name if isinstance(name, str) and storable(name) else None  # "\ud800" or NUL: no column holds it


_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@")
_SECRET_PAIR = re.compile(r"(?i)\b((?:api[_-]?key|password|passwd|pwd|secret|token|authorization)\s*[=:]\s*)[^\s&,;]+")


def scrub(text: str) -> str:
    """Return an error excerpt fit to store: URL passwords and ``secret=...`` values as ``***``, 1,000 characters."""
    return _SECRET_PAIR.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))[:1000]


Outcome = Literal["done", "retry", "dead"]


@attrs.frozen
class InboxAttempt:
    """One handler run of an event, as its history (`Inbox.get`) keeps it."""

    attempt: int
    """The attempt's number in its series (a replay starts a new series at 1)."""

    started_at: float
    """When the handler was called (seconds since the epoch)."""

    duration: float
    """Seconds the run took."""

    outcome: Outcome
    """What the worker recorded: ``"done"``, ``"retry"`` or ``"dead"``."""

    detail: str | None = None
    """Why it failed (an error excerpt, or a forward's status and answer), or on ``done`` the text the handler
    returned (a forward's status, ``"204"``; ``None`` when it returned none); scrubbed of secrets."""

    def to_json(self) -> dict[str, Any]:
        """Return the attempt as JSON (times in UTC RFC 3339)."""
        return {
            "attempt": self.attempt,
            "started_at": rfc3339(self.started_at),
            "duration_seconds": round(self.duration, 6),
            "outcome": self.outcome,
            "detail": self.detail,
        }


NEVER_FINISHED = "the handler never finished its last attempt (the worker died or its lease ran out)"
"""The error of an event buried by `Inbox.claim` because it had no attempt left."""

NO_LIMIT = 2**31 - 1
"""``max_attempts`` when none is given: no event is buried by a claim."""


def claim_update(*, now: str, lease_until: str, max_attempts: str, error: str) -> str:
    """Return the ``UPDATE`` (without ``WHERE``) a claim applies to each due event, from SQL expressions.

    An event with attempts left gets one more attempt and the lease; one without is buried.
    """
    spent = f"attempts >= {max_attempts}"
    return (
        f"UPDATE fullstory_inbox SET status = CASE WHEN {spent} THEN 'dead' ELSE status END, "
        f"processed_at = CASE WHEN {spent} THEN {now} ELSE processed_at END, "
        f"last_error = CASE WHEN {spent} THEN {error} ELSE last_error END, "
        f"next_attempt_at = CASE WHEN {spent} THEN next_attempt_at ELSE {lease_until} END, "
        f"attempts = CASE WHEN {spent} THEN attempts ELSE attempts + 1 END"
    )


class InboxError(FullstoryError):
    """The inbox cannot be opened, migrated or written, or did not answer within ``commit_timeout``.

    The message never contains a password.
    """


def rfc3339(timestamp: float) -> str:
    """Return seconds since the epoch as an RFC 3339 UTC time with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_commit_timeout(commit_timeout: float) -> float:
    """Return ``commit_timeout`` as a float, or refuse it unless a positive, finite number of seconds."""
    if (
        not isinstance(commit_timeout, int | float)
        or isinstance(commit_timeout, bool)
        or not math.isfinite(commit_timeout)
        or commit_timeout <= 0
    ):
        raise InvalidArgumentError("commit_timeout", f"must be a positive number of seconds, got {commit_timeout!r}")
    return float(commit_timeout)


def delivery_key(org_id: str, body: bytes) -> str:
    """Return the key a delivery is stored under: hex SHA-256 of the org id, a NUL and the raw body."""
    return hashlib.sha256(org_id.encode("utf-8") + b"\0" + body).hexdigest()


@attrs.frozen
class InboxRecord:
    """One stored delivery, as `Inbox.claim` and `Inbox.export` return it."""

    key: str
    """The delivery key (`delivery_key`)."""

    org_id: str
    """The org that signed the delivery."""

    body: bytes = attrs.field(repr=False)
    """The raw body exactly as received."""

    received_at: float
    """When it was stored (seconds since the epoch)."""

    status: Status
    """``"pending"``, ``"done"`` or ``"dead"``."""

    attempts: int
    """How many times a worker handed it to its handler (a claim given back unrun, `Inbox.release`, does not count)."""

    signed_at: float | None = None
    """The signature timestamp, in seconds since the epoch."""

    last_error: str | None = None
    """Why the last attempt failed, if it did."""

    next_attempt_at: float | None = None
    """When the event is due (seconds since the epoch). For a claimed record, when its lease ends:
    it identifies the claim, so `Inbox.complete`, `Inbox.retry` and `Inbox.bury` act only while
    that claim still holds the event."""

    traceparent: str | None = None
    """The W3C ``traceparent`` of the delivery's span, when a tracing hook gave one (links a handler run's span)."""

    event_type: str | None = None
    """The body's ``eventName`` (``None`` when the body is not a JSON object naming one)."""

    def export_line(self) -> dict[str, Any]:
        """Return the ``inbox export`` object for this record (the line format is in docs/receiving.md).

        ``event`` is the body as received when it is a JSON object, else ``null`` with the raw
        body in ``body_base64`` (``null`` otherwise), so every record exports.
        """
        try:
            event = json.loads(self.body)
        except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON
            event = None
        if not isinstance(event, dict):
            event = None
        return {
            "event": event,
            "body_base64": None if event is not None else base64.b64encode(self.body).decode("ascii"),
            "key": self.key,
            "received_at": rfc3339(self.received_at),
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


@attrs.frozen
class InboxStats:
    """How many events the inbox holds in each state."""

    pending: int
    """Waiting for a worker (including those waiting for a retry or claimed right now)."""

    done: int
    """Processed and kept until retention purges them."""

    dead: int
    """Given up on after the worker's ``max_attempts``; `Inbox.replay` brings them back."""

    oldest_pending_at: float | None
    """When the oldest pending event was received (seconds since the epoch), if any."""

    oldest_pending_age: float | None = None
    """How long ago (seconds, by the inbox's clock) the oldest pending event was received, if any."""

    capped: bool = False
    """True when a count reached `STATS_CAP`: that count means at least `STATS_CAP` events (counting stops there)."""

    def to_json(self) -> dict[str, Any]:
        """Return the counts as ``inbox stats`` prints them (times in UTC RFC 3339)."""
        oldest, age = self.oldest_pending_at, self.oldest_pending_age
        return {
            "pending": self.pending,
            "done": self.done,
            "dead": self.dead,
            "oldest_pending_at": None if oldest is None else rfc3339(oldest),
            "oldest_pending_age_seconds": None if age is None else round(age, 3),
            "capped": self.capped,
        }


def check_retention(retention: float | None) -> float | None:
    """``None`` (keep forever) or a positive, finite number of seconds."""
    if retention is None:
        return None
    if not isinstance(retention, int | float) or isinstance(retention, bool) or not math.isfinite(retention):
        raise InvalidArgumentError("retention", f"must be a number of seconds or None, got {retention!r}")
    if retention <= 0:
        raise InvalidArgumentError("retention", f"must be > 0, got {retention!r}")
    return float(retention)


class Inbox(abc.ABC):
    """A durable store of verified deliveries (open one with `open_inbox`).

    Every method is safe to call from several tasks at once, and several processes (or
    machines, on PostgreSQL) may share one inbox.
    """

    def __init__(
        self, *, retention: float | None, clock: Callable[[], float], commit_timeout: float = DEFAULT_COMMIT_TIMEOUT
    ) -> None:
        self.retention = check_retention(retention)
        self.commit_timeout = check_commit_timeout(commit_timeout)
        """Seconds any operation may take before it fails with `InboxError`."""
        self.clock = clock
        self._last_purge = -math.inf
        self.arrival = asyncio.Event()
        """Set when this process stores a new event (an `InboxWorker` here wakes at once)."""
        self._backfilling: asyncio.Task[None] | None = None

    async def _start_backfill(self, batch: Callable[[], Awaitable[bool]]) -> None:
        """Fill schema 3's event types, ``batch`` (True when done) a transaction at a time.

        The first batch runs now (a small inbox is done before `open_inbox` returns); the rest in
        the background, so deliveries keep committing between batches. The progress is committed
        with each batch: a process stopped meanwhile leaves the rest to the next `open_inbox`.
        """
        pause = BACKFILL_RETRY
        with contextlib.suppress(InboxError):  # else the background task tries again
            if await batch():
                return

        async def fill() -> None:
            nonlocal pause
            while True:
                try:
                    if await batch():
                        return
                    pause = BACKFILL_RETRY
                except InboxError as exc:  # a held lock, a database away: try the same batch again later
                    logger.warning("event type backfill paused for %g s: %s", pause, exc)
                    await asyncio.sleep(pause)
                    pause = min(60.0, pause * 2)

        self._backfilling = asyncio.get_running_loop().create_task(fill(), name="fullstory-inbox-backfill")

    async def _stop_backfill(self) -> None:
        task, self._backfilling = self._backfilling, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _purge_due(self) -> bool:
        """Return True at most once a minute, while a retention is set."""
        now = time.monotonic()
        if self.retention is None or now - self._last_purge < _PURGE_EVERY:
            return False
        self._last_purge = now
        return True

    @abc.abstractmethod
    async def put(
        self, body: bytes, *, org_id: str, signed_at: float | None = None, traceparent: str | None = None
    ) -> bool:
        """Store a verified delivery; return ``False`` if its key was already stored (nothing written).

        Returns only once the delivery is committed: acknowledge the sender after it.
        ``traceparent`` (W3C) names the delivery's span, for the handler run's span to link to.
        """

    @abc.abstractmethod
    async def claim(self, limit: int, *, lease: float, max_attempts: int | None = None) -> builtins.list[InboxRecord]:
        """Take up to ``limit`` due pending events, oldest first, for ``lease`` seconds; count an attempt.

        The attempt is counted with the claim, so a process that dies in the handler has spent
        it; a worker that cannot run a claimed event gives it back uncounted with `release`.

        A due event that already had ``max_attempts`` attempts (its last claim ended without an
        outcome: the worker died, or its lease ran out) is not handed out again: it is made
        ``dead`` with `NEVER_FINISHED` as its error and returned with status ``"dead"``.
        """

    @abc.abstractmethod
    async def complete(self, record: InboxRecord, *, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``done``; ``False`` (nothing written) if this claim no longer holds it.

        ``attempt`` is added to the event's history in the same transaction (the last `HISTORY_KEPT` are kept).
        """

    @abc.abstractmethod
    async def retry(
        self, record: InboxRecord, *, error: str, delay: float, attempt: InboxAttempt | None = None
    ) -> bool:
        """Make a claimed event due again ``delay`` seconds from now, noting ``error``; otherwise as `complete`."""

    @abc.abstractmethod
    async def bury(self, record: InboxRecord, *, error: str, attempt: InboxAttempt | None = None) -> bool:
        """Mark a claimed event ``dead`` (a dead letter), noting ``error``; otherwise as `complete`."""

    async def requeue_dead(self) -> int:
        """Make every dead event pending again with a new series of attempts; return how many (`replay`)."""
        return (await self.replay(InboxFilter(status="dead"))).replayed

    async def list(self, filters: InboxFilter | None = None, cursor: str | None = None, limit: int = 50) -> InboxPage:
        """Return one page of the events ``filters`` matches, newest first (keyset pagination: no ``OFFSET``).

        Pass the page's ``next_cursor`` for the next (older) page; events stored meanwhile
        (newer) never shift nor repeat the pages that follow. ``limit`` is 1 to 1,000.
        """
        after = decode_cursor(cursor)
        records = await self._page(filters or InboxFilter(), after, check_limit(limit))
        more = len(records) > limit
        records = records[:limit]
        return InboxPage(tuple(records), encode_cursor(records[-1]) if more else None)

    async def replay(self, filters: InboxFilter, *, dry_run: bool = False) -> ReplayResult:
        """Make the done and dead events ``filters`` matches pending again, due now, attempts reset.

        Each starts a new series of attempts; its history is kept. Pending events match but
        are left alone. A key prefix must name one event (else `InvalidArgumentError` naming
        how many it matches); ``filters.status`` must not be ``"pending"``. ``dry_run``
        counts the matches and those it would replay (one read, each count from an index),
        and changes nothing.

        The matches are replayed `REPLAY_BATCH` at a time, newest first (a keyset walk, as
        `list`), each batch its own short transaction: a replay of a million events never
        holds the write lock long, so deliveries and workers go on meanwhile. Each event is
        counted and replayed at most once per call (the walk never goes back), ``matched``
        and ``replayed`` count exactly what the walk met and changed; events received after
        the replay started are newer than its first batch and not met. A replay stopped
        half-way (an `InboxError`, a cancellation) leaves the batches before replayed.
        """
        if filters.status == "pending":
            raise InvalidArgumentError(
                "status",
                "pending events are due, in a handler or awaiting a retry: replay done or dead ones",
            )
        if filters.key is not None and len(filters.key) < 64:
            [count] = await self._counts([InboxFilter(key=filters.key)])
            if count > 1:
                raise InvalidArgumentError(
                    "key", f"the prefix {filters.key!r} matches {count} events: give more of the key"
                )
        if dry_run:
            if filters.status is not None:  # every match is replayable
                [matched] = await self._counts([filters])
                return ReplayResult(matched, matched, dry_run=True)
            matched, pending = await self._counts([filters, attrs.evolve(filters, status="pending")])
            return ReplayResult(matched, matched - pending, dry_run=True)
        matched = replayed = 0
        after: tuple[float, str] | None = None
        while True:
            met, changed, after = await self._replay_batch(filters, after, REPLAY_BATCH)
            matched, replayed = matched + met, replayed + changed
            if after is None:
                return ReplayResult(matched, replayed)

    @abc.abstractmethod
    async def get(self, key: str) -> InboxEntry | None:
        """Return the event stored under ``key`` (the full key) with its attempt history, ``None`` if none is."""

    @abc.abstractmethod
    async def _page(
        self, filters: InboxFilter, after: tuple[float, str] | None, limit: int
    ) -> builtins.list[InboxRecord]:
        """Return up to ``limit + 1`` events matching ``filters`` strictly after ``after``, newest first."""

    @abc.abstractmethod
    async def _counts(self, filters: builtins.list[InboxFilter]) -> builtins.list[int]:
        """Count the events each filter matches, in one read."""

    @abc.abstractmethod
    async def _replay_batch(
        self, filters: InboxFilter, after: tuple[float, str] | None, limit: int
    ) -> tuple[int, int, tuple[float, str] | None]:
        """Replay the next matches after ``after`` (about ``limit``) in one transaction.

        Return how many it met, how many it replayed, and where the next batch starts (``None``: the last batch).
        """

    @abc.abstractmethod
    async def stats(self) -> InboxStats:
        """Count the events in each state, up to `STATS_CAP` each (a read: it passes another process's write lock).

        No exact total counts over large tables: each count reads at most `STATS_CAP` entries of
        the status index, so the call costs the same on an inbox of any size; a count at the cap
        means at least that many (`InboxStats.capped`). Below the cap the counts are exact.
        """

    @abc.abstractmethod
    async def ready(self) -> bool:
        """Tell whether the inbox can commit now, within ``commit_timeout`` (a readiness probe; never raises)."""

    @abc.abstractmethod
    def export(self) -> AsyncIterator[InboxRecord]:
        """Every stored event (dead letters included), in the order received."""

    def _check_key(self, key: str) -> str:
        """Refuse anything but a full delivery key (64 hex digits)."""
        if not isinstance(key, str) or len(key) != 64 or InboxFilter(key=key).key != key:
            raise InvalidArgumentError("key", f"must be a full delivery key (64 lowercase hex digits), got {key!r}")
        return key

    @abc.abstractmethod
    async def purge(self) -> int:
        """Delete ``done`` events processed more than ``retention`` seconds ago; return how many."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Finish the writes in progress and release the connections (idempotent)."""

    @abc.abstractmethod
    async def release(self, record: InboxRecord) -> bool:
        """Give a claimed event back unrun: due at once, its claim's attempt uncounted; ``False`` as `complete`."""

    @abc.abstractmethod
    async def activity(self) -> InboxActivity:
        """Return the last day a minute at a time: events received by status now, and the oldest pending age.

        Bounded work: at most `MAX_SCANNED` events read (see `InboxActivity.counted_since`).
        """
