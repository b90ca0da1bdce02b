"""Finding stored events: `InboxFilter` (shared by `Inbox.list` and `Inbox.replay`), keyset cursors, SQL.

Listing is newest first with *keyset pagination*: a page ends at an event's ``(received_at,
key)`` and the next page starts strictly after it, so a page costs the same however deep it
is (no ``OFFSET``), and events stored meanwhile (newer, so before the first page) neither
shift nor repeat the pages after. The cursor is that position, opaque to callers. Every
filter has an index (schema 3) that serves it in that order.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from fullstory_async._exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from fullstory_async.receiving._inbox import InboxAttempt, InboxRecord, Status

MIN_KEY_PREFIX = 8
"""Characters a key prefix needs at least (``--key``): shorter ones match too many events to mean one."""

MAX_PAGE = 1000
"""The largest ``limit`` of one `Inbox.list` page."""

_HEX = re.compile(r"[0-9a-f]+")


def _status(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in ("pending", "done", "dead"):
        raise InvalidArgumentError("status", f"must be pending, done or dead, got {value!r}")


def _time(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(attribute.name, f"must be a datetime with a time zone, got {value!r}")


def storable(text: str) -> bool:
    """Tell whether both engines can store ``text``: no NUL (PostgreSQL refuses it), no lone surrogate (not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _is_key(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.fullmatch(value) is not None


def _event_type(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value or not storable(value)):
        raise InvalidArgumentError("event_type", f"must be a non-empty event name (UTF-8 text, no NUL), got {value!r}")


def _key(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _HEX.fullmatch(value) or not MIN_KEY_PREFIX <= len(value) <= 64:
        raise InvalidArgumentError(
            "key", f"must be a delivery key or a prefix of at least {MIN_KEY_PREFIX} of its hex digits, got {value!r}"
        )


@attrs.frozen
class InboxFilter:
    """Which stored events `Inbox.list` shows and `Inbox.replay` replays; every field given must match.

    The empty filter (``InboxFilter()``) matches every event.
    """

    status: Status | None = attrs.field(default=None, validator=_status)
    """``"pending"``, ``"done"`` or ``"dead"``."""

    since: datetime | None = attrs.field(default=None, validator=_time)
    """Received at or after this time (inclusive; time-zone aware)."""

    until: datetime | None = attrs.field(default=None, validator=_time)
    """Received before this time (exclusive; time-zone aware)."""

    event_type: str | None = attrs.field(default=None, validator=_event_type)
    """The body's ``eventName`` (`InboxRecord.event_type`)."""

    key: str | None = attrs.field(default=None, validator=_key)
    """A delivery key, or a prefix of at least `MIN_KEY_PREFIX` of its lowercase hex digits."""

    @property
    def empty(self) -> bool:
        """True when no field is set: the filter matches every event."""
        return self == InboxFilter()

    def where(self, param: Params) -> list[str]:
        """Return the SQL conditions of this filter, each value added to ``param``."""
        clauses = []
        if self.status is not None:
            clauses.append(f"status = {param(self.status)}")
        if self.since is not None:
            clauses.append(f"received_at >= {param(self.since.timestamp())}")
        if self.until is not None:
            clauses.append(f"received_at < {param(self.until.timestamp())}")
        if self.event_type is not None:
            clauses.append(f"event_type = {param(self.event_type)}")
        if self.key is not None:
            clauses.extend(key_range(self.key, param))
        return clauses


def key_range(key: str, param: Params) -> list[str]:
    """Return the conditions selecting ``key``, or every key it is a prefix of (an index range on the primary key)."""
    if len(key) == 64:
        return [f"key = {param(key)}"]
    return [f"key >= {param(key)}", f"key < {param(key + 'g')}"]  # 'g' follows every hex digit


class Params:
    """Collects a statement's values; each call returns the placeholder of its value (``?`` or ``$n``)."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return "?" if self.style == "?" else f"${len(self.values)}"


def where_clause(clauses: list[str]) -> str:
    """Return ``WHERE a AND b`` (or nothing) for a list of conditions."""
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def page_sql(columns: str, filters: InboxFilter, after: tuple[float, str] | None, limit: int, param: Params) -> str:
    """Return the query of one page, newest first, starting strictly after ``after``; fetches ``limit + 1`` rows."""
    clauses = filters.where(param)
    if after is not None:
        clauses.append(f"(received_at, key) < ({param(after[0])}, {param(after[1])})")
    order = " ORDER BY received_at DESC, key DESC"
    return f"SELECT {columns} FROM fullstory_inbox{where_clause(clauses)}{order} LIMIT {param(limit + 1)}"


def counts_sql(filters: list[InboxFilter], param: Params) -> str:
    """Return one statement counting each filter's matches (one snapshot; each count served by its own index)."""
    counts = (f"(SELECT count(*) FROM fullstory_inbox{where_clause(f.where(param))})" for f in filters)
    return f"SELECT {', '.join(counts)}"


def stats_sql(cap: int, param: Params) -> str:
    """Return the statement of `Inbox.stats`' counts: the events in each state, up to ``cap`` each.

    Each count reads at most ``cap`` entries of the status index (``LIMIT`` in a subquery), so
    its cost is bounded however large the inbox grows (no exact total counts over large tables).
    """
    counts = (
        f"(SELECT count(*) FROM (SELECT 1 FROM fullstory_inbox WHERE status = '{status}' LIMIT {param(cap)}) AS s)"
        for status in ("pending", "done", "dead")
    )
    return f"SELECT {', '.join(counts)}"


def replay_batch_sql(filters: InboxFilter, after: tuple[float, str] | None, limit: int, param: Params) -> str:
    """Return the query of one replay batch: the position and status of up to ``limit + 1`` matches after ``after``.

    The same keyset walk as `page_sql` (newest first), on the same indexes, reading no body.
    """
    return page_sql("received_at, key, status", filters, after, limit, param)


def encode_cursor(record: InboxRecord) -> str:
    """Return the opaque cursor of the position just after ``record``."""
    raw = json.dumps([record.received_at, record.key]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """Return the position a cursor from `encode_cursor` names, or refuse it naming ``cursor``."""
    if cursor is None:
        return None
    try:
        received_at, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(received_at, int | float) and math.isfinite(received_at) and _is_key(key):
            return float(received_at), key
    except (ValueError, TypeError, binascii.Error, RecursionError):
        pass
    raise InvalidArgumentError("cursor", "not a cursor returned by Inbox.list (pass next_cursor as it is)")


def check_limit(limit: int) -> int:
    """Refuse a page size outside 1..`MAX_PAGE`."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgumentError("limit", f"must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
    return limit


@attrs.frozen
class InboxPage:
    """One page of `Inbox.list`: events newest first, and the cursor of the next page."""

    records: tuple[InboxRecord, ...]
    """The events of this page, newest first."""

    next_cursor: str | None
    """Pass it to `Inbox.list` for the next (older) page; ``None`` on the last page."""


@attrs.frozen
class InboxEntry:
    """One stored event with its attempt history, as `Inbox.get` returns it."""

    record: InboxRecord
    """The event."""

    history: tuple[InboxAttempt, ...]
    """Its last `HISTORY_KEPT` handler runs, oldest first (replays included: a replay keeps the history)."""


@attrs.frozen
class ReplayResult:
    """What `Inbox.replay` did."""

    matched: int
    """Events the filter matched (pending ones included)."""

    replayed: int
    """Done or dead events made pending again, due now, with a new series of attempts (on a dry run: would be)."""

    dry_run: bool = False
    """True when nothing was changed (`Inbox.replay` with ``dry_run``)."""
