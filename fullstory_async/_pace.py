"""The pace of one route: what the server admits, learned from its answers (see `RateGovernor`).

A `RoutePace` is pure bookkeeping on an injected clock: it records each call's start and
outcome and says at what rate the route's calls may start. The model, in order of a job:

1. **Slow start.** A route starts paced at ``start_rate`` and grows 1.5x every 50 ms
   while nothing binds, so an unlimited server is run at full speed within half a second,
   while a limited one meets its limit with a bounded overshoot (never a whole burst of
   every worker at once). Above 100/s, until the route's first 429, its calls leave in
   batches: those whose slots fall in the same 10 ms go together at its start (the same
   rate, fewer wake-ups: a paced call costs the client less CPU). A route that met a 429
   (a limiter with a small burst refuses the second call of a batch) and a ``max_rate``
   it reached are paced call by call.
2. **Binding or stray.** A 429 binds when most calls around it were refused too (3 of the
   last 10 outcomes), when refusals make up 5% of the last second, or when the pace was
   near the last measured limit. Any other 429 is a stray: only the refused call waits
   (the retry layer honours its ``Retry-After``); the pace is untouched.
3. **Measure what is admitted.** On a binding 429 the pace is held (halved first when slow
   start overshot) while the server is refusing, until 10 successes or 20 refusals: the
   successes per second of the time it spent sending (the gaps between all its outcomes,
   lulls when every call was held left out, so a window's bursts are averaged over the
   window) are the rate the server admits, its limit ``L``, and the pace becomes ``0.95 L``.
   One whose refusals all came before its successes saw a window open again: ``L`` is what
   was admitted in the second before the reopened window's first success (kept from the
   binding refusal: by the decision it is older than a second), or, when that success came
   late (every call held by ``Retry-After``), the run of successes the refusals ended. An
   estimate within 25% of the last one is averaged with it; one far above it is capped by
   the last second's admissions (a fixed window lets its first calls through at any pace). A
   measurement that met no other refusal was a stray or a hair over the limit: the pace only
   eases by 2%. Refusals of calls started before a decision are not counted again.
4. **Closed.** A measurement with no success at all (a spent fixed window, a dead route):
   send a trickle (a tenth of the last second's admissions) until a call succeeds, then
   resume at ``0.95 L``. With nothing admitted in the whole last second, also wait for the
   ``Retry-After``.
5. **Hold, then probe.** After two quiet seconds (x1.5, up to four, each time a probe meets
   the same limit) the pace grows as a cubic of the time since: a few percent in the first
   half second, 2x after one second. Reaching 2x without a binding 429 means the limit is
   gone: slow start again. Only traffic that uses the pace probes it: while the last
   second's answers are fewer than half the pace, it stays at ``0.95 L`` and the probe waits
   (a quiet service that bursts later meets its limit remembered, not forgotten).
6. **Idle restart.** A route idle for a second resumes at ``0.95 L`` (or ``start_rate``),
   never at a rate its traffic no longer proves.

``max_rate`` caps the pace and ``min_rate`` floors it.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

_START_GROWTH = 1.5  # slow start: x1.5 ...
_START_STEP = 0.05  # ... every 50 ms
_BATCH = 0.01  # slow start: calls whose slots fall in the same 10 ms leave together
_MOST = 3  # a 429 binds when this many of ...
_AROUND = 10  # ... the last outcomes were refused
_SHARE = 0.05  # or when refusals are this share of the last second (and at least _MOST)
_PROBING = 0.9  # or when the pace was at least this fraction of the measured limit
_EASE = 0.98  # a measurement that met no other refusal only eases the pace this much
_MEASURE_OK = 10  # a measurement ends after this many successes ...
_MEASURE_REFUSED = 20  # ... or refusals ...
_MEASURE_TIME = 10.0  # ... or seconds (calls held by Retry-After may leave none to send for a while)
_HEADROOM = 0.95  # pace at this fraction of the measured limit
_HOLD = 2.0  # quiet seconds before probing above it; x1.5 after each probe that met the same limit ...
_MAX_HOLD = 4.0  # ... up to this
_SAME = 0.25  # "the same limit": within this fraction (then estimates are averaged)
_CUBIC = 1.0  # probing: the pace is base * (1 + (t / _CUBIC) ** 3), t = seconds of probing ...
_LEFT_BEHIND = 2.0  # ... until it reaches this multiple of the base unrefused: the limit is gone, slow start
_USED = 0.5  # probing only while the last second's answers were at least this share of the pace
_IDLE = 1.0  # a route idle this long restarts from its base
_TRICKLE = 0.1  # while nothing is admitted (a closed window), send this fraction of the last second's admissions
_MAX = 1e6  # requests per second: effectively unpaced


class RoutePace:
    """Pace and learned limit of one route."""

    def __init__(self, now: float, *, start_rate: float, min_rate: float, max_rate: float | None) -> None:
        self.start_rate = start_rate
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.limit: float | None = None
        """The admitted rate measured in the last binding episode (None: no limit met yet)."""
        self.rate = self._capped(start_rate)
        """Current pace, requests per second."""
        self.paused_until = now
        self.next_slot = now
        self.last_start = now
        self._grown_at = now  # slow start: when the rate last grew
        self._base = self.rate  # probing grows from here ...
        self._quiet_since = now  # ... starting hold seconds after this
        self._hold = _HOLD
        self._decided_at = now  # refusals of calls started before this are accounted for
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, admitted) in the last second
        self._ok_last_second = 0
        self._measuring: list[float] | None = None  # success times while measuring
        self._measure_times: list[float] = []  # every outcome's time while measuring, from the binding refusal
        self._measure_start = 0.0
        self._measure_refused = 0
        self._spent: list[float] = []  # at a binding refusal: the success times of the last second
        self._run_began = 0.0  # ... when the run of successes the refusals ended began
        self._spent_end = 0.0  # ... and when those refusals began
        self._probing_bound = False  # whether the binding refusal met a probe above the base pace
        self._last_refused = 0.0  # when the last refusal came
        self._reopen: float | None = None  # while closed: the pace to resume at the first success
        self._batching = True  # slow start releases batches until the route's first 429

    def __repr__(self) -> str:
        limit = "unknown" if self.limit is None else f"{self.limit:.1f}/s"
        return f"RoutePace(rate={self.rate:.1f}/s, limit={limit})"

    def _capped(self, rate: float) -> float:
        rate = min(max(rate, self.min_rate), _MAX)
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def _settle(self, rate: float, now: float) -> None:
        """Pace at ``rate`` from now on; hold before probing; later refusals are new evidence."""
        self._base = self.rate = self._capped(rate)
        self._measuring, self._spent = None, []
        self._decided_at = self._quiet_since = self._grown_at = now

    # -- starts ---------------------------------------------------------------------

    def current_rate(self, now: float) -> float:
        """Return the pace now, after growth (slow start, probing) and idle restart."""
        if self._measuring is not None or self._reopen is not None:
            return self.rate
        if now - self.last_start > _IDLE and now > self._quiet_since + _IDLE:
            self._settle(self.start_rate if self.limit is None else _HEADROOM * self.limit, now)
        elif self.limit is None:
            if self.rate < _MAX and now > self._grown_at:
                self.rate = self._capped(self.rate * _START_GROWTH ** ((now - self._grown_at) / _START_STEP))
                self._grown_at = now
        elif now > self._quiet_since + self._hold:
            self._forget_before(now - 1.0)
            if len(self._outcomes) < _USED * self.rate:  # traffic below the pace proves nothing above it
                self._quiet_since, self.rate = now, self._base  # and the hold starts again
                return self.rate
            probing = (now - self._quiet_since - self._hold) / _CUBIC
            self.rate = self._capped(self._base * (1 + probing**3))
            if self.rate >= _LEFT_BEHIND * self._base:  # no limit where there was one: slow start
                self.limit, self._hold, self._grown_at = None, _HOLD, now
        return self.rate

    def ready_at(self, now: float) -> float:
        """When the next call may start."""
        rate = self.current_rate(now)
        if rate >= _MAX:
            return max(self.paused_until, now)
        slow_start = self.limit is None and self._measuring is None and self._reopen is None
        if slow_start and self._batching and rate * _BATCH > 1 and rate != self.max_rate:  # several slots in 10 ms
            return max(self.paused_until, math.floor(self.next_slot / _BATCH) * _BATCH)
        return max(self.paused_until, self.next_slot)

    def take_slot(self, now: float) -> None:
        """Start a call now: the next is due one interval later (late wake-ups keep one interval of credit)."""
        rate = self.current_rate(now)  # a late wake-up may find the route idle: it restarts, never bursts
        if rate < _MAX:
            interval = 1.0 / rate
            self.next_slot = max(now - interval, self.next_slot) + interval
        self.last_start = now

    def try_start(self, now: float) -> bool:
        """Start a call now if it need not wait (`ready_at`, then `take_slot`); the usual case."""
        if self.rate >= _MAX and self.limit is None and now - self.last_start <= _IDLE and now >= self.paused_until:
            self.last_start = now  # unpaced and busy: what `ready_at` and `take_slot` come to, in one step
            return True
        if self.ready_at(now) > now:
            return False
        self.take_slot(now)
        return True

    # -- outcomes -------------------------------------------------------------------

    def _record(self, now: float, admitted: bool) -> None:
        self._outcomes.append((now, admitted))
        self._ok_last_second += admitted
        self._forget_before(now - 1.0)

    def _forget_before(self, since: float) -> None:
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] < since:
            self._ok_last_second -= outcomes.popleft()[1]

    def on_success(self, started: float, now: float) -> None:
        """Record that a call started at ``started`` was admitted."""
        self._record(now, True)
        if self._measuring is not None:
            self._measuring.append(now)
            self._measure_times.append(now)
            self._maybe_decide(now, None)
        elif self._reopen is not None and started >= self._decided_at:  # the window opened again
            rate, self._reopen = self._reopen, None
            self._settle(rate, now)

    def on_refused(self, started: float, now: float, retry_after: float | None) -> bool:
        """Record that a call started at ``started`` got a 429; return whether it was binding."""
        self._record(now, False)
        self._last_refused = now
        self._batching = False
        if self._measuring is not None:
            self._measure_refused += 1
            self._measure_times.append(now)
            self._maybe_decide(now, retry_after)
            return True
        if self._reopen is not None or started < self._decided_at or not self._binding():
            return False
        self._measuring, self._measure_times, self._measure_start, self._measure_refused = [], [now], now, 1
        self._spent = [at for at, ok in self._outcomes if ok]
        self._run_began, self._spent_end = self._spent_window()
        self._probing_bound = self.limit is not None and self.rate > self._base
        if self.limit is None:  # slow start overshoots by up to 3x: measure at half the pace, half the refusals
            self.rate = self._capped(self.rate / 2)
        return True

    def _binding(self) -> bool:
        recent = [ok for at, ok in self._outcomes if at >= self._decided_at]  # evidence since the last decision
        refused = len(recent) - sum(recent)
        return (
            len(recent[-_AROUND:]) - sum(recent[-_AROUND:]) >= _MOST
            or (refused >= _MOST and refused >= _SHARE * len(recent))
            or (self.limit is not None and self.rate >= _PROBING * self.limit)
        )

    def _spent_window(self) -> tuple[float, float]:
        """Return when the run of successes that the current refusals ended began, and when the refusals began.

        Read back through the last second: first the current run of refusals (a success alone
        among them is a call admitted just before the window closed, answered late), then the
        run of successes before it, back to the previous window's refusals (two in a row: one
        alone among successes is a stray).
        """
        outcomes = list(self._outcomes)
        i = len(outcomes) - 1
        while i >= 0 and (not outcomes[i][1] or (i > 0 and not outcomes[i - 1][1])):
            i -= 1
        refusals_began = outcomes[i + 1][0] if i + 1 < len(outcomes) else math.inf
        run_began = refusals_began
        while i >= 0 and (outcomes[i][1] or (i > 0 and outcomes[i - 1][1])):
            run_began = outcomes[i][0]
            i -= 1
        return run_began, refusals_began

    def learn(self, limit: float, now: float) -> None:
        """Take ``limit`` (requests per second) as the route's limit: pace just under it, probe later."""
        self.limit = max(limit, self.min_rate)
        self._settle(_HEADROOM * self.limit, now)

    def _busy_time(self) -> float:
        """Seconds the measurement spent sending: the gaps between its outcomes, lulls (every call held) left out.

        The spacing of all outcomes, not of the successes, tells a lull from the server's own
        shape: a fixed window admits its calls in bursts at each window's start, and the long
        gaps between bursts are full of refusals, so they count.
        """
        import statistics  # on first use: only a binding limit is measured, and import time counts

        gaps = [b - a for a, b in itertools.pairwise(self._measure_times)]
        lull = 2 * statistics.median(gaps) if gaps else 0.0
        return max(sum(gap for gap in gaps if gap <= lull), 1e-3)

    def _maybe_decide(self, now: float, retry_after: float | None) -> None:
        times = self._measuring
        assert times is not None
        more = len(times) < _MEASURE_OK and self._measure_refused < _MEASURE_REFUSED
        if more and now < self._measure_start + _MEASURE_TIME:
            return
        if self._measure_refused <= 1:  # nothing else refused: a stray, or barely over the limit
            self._settle(_EASE * self.rate, now)
            return
        if not times:  # nothing admitted: a closed window, or a hard limit
            admitted = float(self._ok_last_second)
            self.limit = max(admitted, self.min_rate)
            self._settle(max(_TRICKLE * admitted, self.min_rate), now)
            self._reopen = self._capped(_HEADROOM * self.limit)
            if admitted == 0 and retry_after is not None:
                self.paused_until = max(self.paused_until, now + retry_after)
            return
        previous = self.limit
        if self._last_refused < times[0]:  # no refusal among the successes: a window opened again
            # A one-second window began a second before the reopened one's first success (a shorter
            # one, windows ago: all of that second counts). When that success was seen late (every
            # call held by Retry-After), count the run of successes the refusals ended instead.
            opened = times[0] - 1.0
            since = opened if opened < self._spent_end else self._run_began
            admitted = float(max(sum(at >= since for at in self._spent), len(times)))
        else:
            admitted = len(times) / self._busy_time()
            if previous is not None and admitted > (1 + _SAME) * previous:
                # A jump up: a window's first calls all pass at our pace; believe no more than a second admitted.
                admitted = max(min(admitted, self._ok_last_second), previous)
        if previous is not None and abs(admitted - previous) <= _SAME * previous:
            if self._probing_bound:  # a probe met the same limit again: probe less often
                self._hold = min(self._hold * 1.5, _MAX_HOLD)
            admitted = (admitted + previous) / 2
        else:
            self._hold = _HOLD
        self.learn(admitted, now)
