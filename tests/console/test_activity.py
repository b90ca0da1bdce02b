"""`Inbox.activity` on SQLite and PostgreSQL: checked minute by minute against a direct count, and its bound."""

from __future__ import annotations

import math
import random
import sqlite3
from typing import Any

import pytest

from fullstory_async.receiving import _activity, open_inbox
from fullstory_async.receiving._activity import WINDOW_MINUTES
from fullstory_async.receiving._query import Params
from fullstory_async.testing import ManualClock

NOW = 1_900_000_000.0 + 37.5  # mid-minute


def expected(now: float, events: list[tuple[float, float | None, str]], since: float) -> list[tuple[int, ...]]:
    """Count directly: per minute, events received in it by final status; the oldest pending at its end."""
    first = math.floor(now / 60) - WINDOW_MINUTES
    rows = []
    for minute in range(first, math.floor(now / 60) + 1):
        start, end = minute * 60.0, min((minute + 1) * 60.0, now)
        counted = [status for received, _, status in events if start <= received < start + 60 and received >= since]
        waiting = [
            received
            for received, processed, _ in events
            if received < (minute + 1) * 60
            and (processed is None or processed >= (minute + 1) * 60)
            and (received >= since or processed is None)  # before the counted minutes only the still pending are seen
        ]
        age = None if not waiting else round(max(0.0, end - min(waiting)), 6)
        rows.append((counted.count("pending"), counted.count("done"), counted.count("dead"), age))
    return rows


async def fill(url: str, clock: ManualClock, events: list[tuple[float, float | None, str]]) -> None:
    """Store each event at its time, and settle it at its processing time (a day-long claim in between)."""
    steps = []
    for n, (received, processed, _status) in enumerate(events):
        steps.append((received, 0, n))
        if processed is not None:
            steps.append((processed, 1, n))
    claims = {}
    async with open_inbox(url, clock=clock, retention=None) as inbox:
        for at, kind, n in sorted(steps):
            clock.advance(at - clock())
            if kind == 0:
                await inbox.put(f'{{"n": {n}}}'.encode(), org_id="org")
                [claims[n]] = await inbox.claim(1, lease=10 * 86400)
            elif events[n][2] == "done":
                assert await inbox.complete(claims[n])
            else:
                assert await inbox.bury(claims[n], error="x")


def random_events(seed: int) -> list[tuple[float, float | None, str]]:
    """Events over the last three hours (and a few older): some pending, the rest done or dead a while later."""
    rng = random.Random(seed)
    events: list[tuple[float, float | None, str]] = []
    for _ in range(60):
        received = NOW - rng.uniform(0, 3 * 3600)
        status = rng.choice(["pending", "done", "done", "dead"])
        processed = None if status == "pending" else min(NOW - 0.001, received + rng.expovariate(1 / 600))
        events.append((received, processed, status))
    events.append((NOW - 2 * 86400, None, "pending"))  # pending from before the day: aged in every minute
    events.append((NOW - 2 * 86400 + 5, NOW - 3600, "done"))  # processed within the day: not seen (documented)
    return events


async def test_activity_matches_a_direct_count(inbox_url: str) -> None:
    events = random_events(7)
    clock = ManualClock(events[-2][0] - 1)
    await fill(inbox_url, clock, events)
    clock.advance(NOW - clock())
    async with open_inbox(inbox_url, clock=clock, retention=None, create=False) as inbox:
        activity = await inbox.activity()
    assert activity.counted_since == activity.minutes[0].minute  # no cut: the whole day is counted
    assert len(activity.minutes) == WINDOW_MINUTES + 1
    assert activity.minutes[-1].minute == math.floor(NOW / 60) * 60
    got = [
        (m.pending, m.done, m.dead, None if m.oldest_pending_age is None else round(m.oldest_pending_age, 6))
        for m in activity.minutes
    ]
    # The event done within the day but received before it is not seen (no index on the processing time).
    want = expected(NOW, events[:-1], activity.counted_since)
    assert got == want
    assert any(m.dead for m in activity.minutes)


async def test_activity_reads_at_most_max_scanned_events(inbox_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_SCANNED events in the day, the older minutes are left out whole and counted_since says so."""
    monkeypatch.setattr(_activity, "MAX_SCANNED", 4)
    events: list[tuple[float, float | None, str]] = [
        (NOW - 600 + 60 * n, None if n % 2 else NOW - 10, "pending" if n % 2 else "done") for n in range(8)
    ]
    clock = ManualClock(events[0][0] - 1)
    await fill(inbox_url, clock, events)
    clock.advance(NOW - clock())
    async with open_inbox(inbox_url, clock=clock, retention=None, create=False) as inbox:
        activity = await inbox.activity()
    # The fifth newest event is the cut: counting starts at the minute after its own.
    assert activity.counted_since == math.floor(events[3][0] / 60) * 60 + 60
    counted = sum(m.pending + m.done + m.dead for m in activity.minutes)
    assert counted == 4
    assert all(m.pending + m.done + m.dead == 0 for m in activity.minutes if m.minute < activity.counted_since)
    got = [(m.pending, m.done, m.dead, m.oldest_pending_age) for m in activity.minutes]
    assert got == [(*row[:3], row[3]) for row in expected(NOW, events, activity.counted_since)]
    # The oldest pending event before the cut still ages the later minutes.
    assert activity.minutes[-1].oldest_pending_age == pytest.approx(NOW - events[1][0])


async def test_an_empty_inbox_has_a_quiet_day(inbox_url: str) -> None:
    async with open_inbox(inbox_url, clock=ManualClock(NOW), retention=None) as inbox:
        activity = await inbox.activity()
    assert len(activity.minutes) == WINDOW_MINUTES + 1
    assert all((m.pending, m.done, m.dead, m.oldest_pending_age) == (0, 0, 0, None) for m in activity.minutes)


READS = [
    (_activity.cut_sql, "fullstory_inbox_received"),
    (_activity.groups_sql, "fullstory_inbox_received"),
    (_activity.oldest_before_sql, "fullstory_inbox_status_received"),
]


@pytest.mark.parametrize(("build", "index"), READS, ids=[build.__name__ for build, _ in READS])
async def test_each_read_is_an_index_range(inbox_url: str, build: Any, index: str) -> None:
    """Bounded work: every read walks a range of an index, never the whole table."""
    async with open_inbox(inbox_url, clock=ManualClock(NOW), retention=None):
        pass
    style = "?" if inbox_url.startswith("sqlite") else "$"
    param = Params(style)
    sql = build(param, NOW - 86400)
    if style == "?":
        conn = sqlite3.connect(inbox_url.removeprefix("sqlite:///"))
        plan = " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", param.values))
        conn.close()
        assert f"SEARCH fullstory_inbox USING COVERING INDEX {index} " in plan or (
            f"SEARCH fullstory_inbox USING INDEX {index} " in plan
        ), plan
        return
    import asyncpg

    conn = await asyncpg.connect(inbox_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = " | ".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *param.values))
    finally:
        await conn.close()
    assert "Seq Scan" not in plan, plan
    assert f" {index} " in plan + " ", plan
