"""The inbox's activity over the last day, a minute at a time (`Inbox.activity`, the console's chart).

Two figures per minute: the events received in it, by their status now; and the age of the
oldest event pending at the minute's end (at *now* for the current minute). An event is pending
at a moment when it was received before it and not processed (done or dead) by then.

The work is bounded: one grouped scan of at most `MAX_SCANNED` events (the newest of the day,
read through the ``(received_at, key)`` index; past that, the older minutes of the day are left
out, whole, and `InboxActivity.counted_since` says from where the counts hold), plus one index
lookup for the oldest event still pending from before them. The scan's rows are grouped by
(minute received, minute processed, status), so the sweep that derives the oldest pending age
works on at most that many groups. Events received before the counted minutes and processed
within them are not seen (no index on the processing time); those still pending are.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import attrs

from fullstory_async.receiving._query import Params

WINDOW_MINUTES = 24 * 60
"""Minutes the activity covers, the current one not counted: a day."""

MAX_SCANNED = 100_000
"""Events one `Inbox.activity` reads at most (the newest of the day)."""


@attrs.frozen
class ActivityMinute:
    """One minute of `InboxActivity`."""

    minute: float
    """The minute's start (seconds since the epoch, a multiple of 60)."""

    pending: int
    """Events received in this minute that are pending now."""

    done: int
    """Events received in this minute that are done now."""

    dead: int
    """Events received in this minute that are dead now."""

    oldest_pending_age: float | None
    """Seconds the oldest event pending at the minute's end had waited then (``None``: none pending)."""


@attrs.frozen
class InboxActivity:
    """The last day of an inbox, a minute at a time, oldest first (`Inbox.activity`)."""

    minutes: tuple[ActivityMinute, ...]
    """Every minute of the day, the current one last."""

    counted_since: float
    """The start of the first minute whose counts are complete (later than the day's start past `MAX_SCANNED`)."""


def _minute(column: str, dialect: str) -> str:
    if dialect == "?":  # SQLite: a cast truncates, which is floor for times after 1970
        return f"CAST({column} / 60 AS INTEGER)"
    return f"floor({column} / 60)::bigint"


def cut_sql(param: Params, start: float) -> str:
    """Return the query of the received time past which the day holds more than `MAX_SCANNED` events (no row: none)."""
    return (
        f"SELECT received_at FROM fullstory_inbox WHERE received_at >= {param(start)} "
        f"ORDER BY received_at DESC LIMIT 1 OFFSET {param(MAX_SCANNED)}"
    )


def groups_sql(param: Params, since: float) -> str:
    """Return the grouped scan: (minute received, minute processed or NULL, status, count, earliest received)."""
    received, processed = _minute("received_at", param.style), _minute("processed_at", param.style)
    return (
        f"SELECT {received} AS received_minute, "
        f"CASE WHEN status = 'pending' OR processed_at IS NULL THEN NULL ELSE {processed} END AS processed_minute, "
        "status, count(*) AS n, min(received_at) AS first "
        f"FROM fullstory_inbox WHERE received_at >= {param(since)} GROUP BY 1, 2, 3"
    )


def oldest_before_sql(param: Params, since: float) -> str:
    """Return the query of the oldest event pending now and received before the counted minutes."""
    return f"SELECT min(received_at) FROM fullstory_inbox WHERE status = 'pending' AND received_at < {param(since)}"


def window(now: float, cut: float | None) -> tuple[float, float]:
    """Return the day's start and the start of its counted minutes (after the minute of ``cut``, when there is one)."""
    start = (math.floor(now / 60) - WINDOW_MINUTES) * 60.0
    if cut is None or cut < start:
        return start, start
    return start, (math.floor(cut / 60) + 1) * 60.0


def activity(
    now: float, start: float, counted_since: float, groups: Iterable[Any], oldest_before: float | None
) -> InboxActivity:
    """Sweep the grouped rows into minutes: counts by status, and the oldest pending age at each minute's end.

    The sweep keeps a heap of (earliest received, minute processed) of the groups received so
    far; a group leaves it (lazily) once its minute processed has passed.
    """
    first, last = int(start // 60), math.floor(now / 60)
    counts: defaultdict[int, Counter[str]] = defaultdict(Counter)
    arrivals: defaultdict[int, list[tuple[float, float]]] = defaultdict(list)
    for received_minute, processed_minute, status, n, earliest in groups:
        counts[int(received_minute)][status] += int(n)
        until = math.inf if processed_minute is None else float(processed_minute)
        arrivals[int(received_minute)].append((float(earliest), until))
    if oldest_before is not None:  # still pending: waiting from the minute it was received (or the day's start) on
        arrivals[max(first, math.floor(oldest_before / 60))].append((oldest_before, math.inf))
    waiting: list[tuple[float, float]] = []
    minutes = []
    for minute in range(first, last + 1):
        for arrival in arrivals.get(minute, ()):
            heapq.heappush(waiting, arrival)
        while waiting and waiting[0][1] <= minute:  # processed within this minute or before: not pending at its end
            heapq.heappop(waiting)
        end = min((minute + 1) * 60.0, now)
        age = max(0.0, end - waiting[0][0]) if waiting else None
        by_status = counts.get(minute, Counter())
        minutes.append(ActivityMinute(minute * 60.0, by_status["pending"], by_status["done"], by_status["dead"], age))
    return InboxActivity(tuple(minutes), counted_since)


Fetch = Callable[[str, list[object]], Awaitable[Sequence[Any]]]


async def read_activity(now: float, style: str, fetch: Fetch) -> InboxActivity:
    """Run the three reads of an engine (``style``: its `Params` placeholders) through ``fetch``; sweep them."""
    start, _ = window(now, None)
    param = Params(style)
    rows = await fetch(cut_sql(param, start), param.values)
    start, since = window(now, rows[0][0] if rows else None)
    param = Params(style)
    groups = await fetch(groups_sql(param, since), param.values)
    param = Params(style)
    oldest = await fetch(oldest_before_sql(param, since), param.values)
    return activity(now, start, since, groups, oldest[0][0] if oldest else None)
