"""The pace of one route: CUBIC over the rate the server admits (see `RateGovernor`).

A `RoutePace` is pure bookkeeping on an injected clock: it records each call's start and
answer and says when the route's next call may start. It follows the AWS SDKs' adaptive
retry mode (botocore's ``ClientRateLimiter``): a token bucket whose fill rate, the pace,
follows CUBIC (RFC 8312, Ha, Rhee and Xu 2008) over a measured rate:

* **Token bucket.** Calls start one interval (``1 / pace``) apart; a call that comes late
  keeps one interval of credit, never a burst (a capacity of one token: the server's
  burst is unknown, and the fake's default is one).
* **Slow start.** Until a route's first cut its pace starts at ``_START_RATE`` and doubles
  every ``_DOUBLING`` seconds (TCP's slow start, RFC 5681; botocore sends unpaced instead,
  which lets every worker's first call out at once).
* **Cut.** A binding 429 sets ``w_max`` to the rate the server admitted (answers other than
  429 in the last second; botocore: the sending rate) and the pace to ``_BETA * w_max``.
  A 429 binds when another 429 is among the route's last ``_STRAY`` answers (a single 429
  among successes is a stray: only the refused call waits its ``Retry-After``, like a
  reordered segment that is no loss, RFC 5681's duplicate-ACK threshold). A 429 of a call
  started before the last cut belongs to that cut (one reduction per congestion event,
  RFC 6582). A cut that finds nothing admitted in the last second, after one that found
  more than ``min_rate``, also holds the route for the ``Retry-After`` (the route has
  closed); from then on it trickles at ``min_rate`` until calls are admitted again.
* **Grow.** Between cuts the pace is ``w_max * (1 + _C * (t - K) ** 3)``, ``K`` the time it
  takes to regain ``w_max``: concave back to it, flat around it, convex beyond it, so a
  lifted limit is left behind in seconds.
* **Application-limited.** ``t`` (and slow start) advance only over gaps between starts of at
  most two intervals: a route using less than half its pace does not grow it (RFC 7661's
  validated window), so a quiet or idle route keeps the pace its traffic proved.

Tunables (7, each justified in one line):

* ``_START_RATE = 100``: requests/s a new route starts at; a 100/s limiter meets a bounded burst.
* ``_DOUBLING = 0.1``: slow start x2 per 100 ms: 1,600/s in 0.4 s; overshoot <= 2x when answers come within it.
* ``_BETA = 0.7``: RFC 8312's and botocore's multiplicative decrease.
* ``_C = 0.4``: RFC 8312's and botocore's scale, per unit of ``w_max`` here so 5/s and 500/s regain it in 0.9 s alike.
* ``_WINDOW = 1.0``: admitted rate over the last second: per-second limits, and a fixed window's bursts average out.
* ``_STRAY = 10``: a 429 binds with another among the last 10 answers: 1% random 429s bind ~10% of the time.
* ``_USED = 2``: the pace grows only over gaps of at most 2 intervals (RFC 7661: half the pace used).

``max_rate`` caps the pace and ``min_rate`` floors it.
"""

from __future__ import annotations

import math
from collections import deque

_START_RATE = 100.0
_DOUBLING = 0.1
_BETA = 0.7
_C = 0.4
_WINDOW = 1.0
_STRAY = 10
_USED = 2.0
_K = ((1 - _BETA) / _C) ** (1 / 3)  # seconds from a cut back to w_max (0.91 s)


class RoutePace:
    """Pace and learned limit of one route."""

    def __init__(self, now: float, *, min_rate: float, max_rate: float | None) -> None:
        self.min_rate = min_rate
        self.max_rate = math.inf if max_rate is None else max_rate
        self.limit: float | None = None
        """``w_max``: the admitted rate measured at the last cut (None: slow start, no cut yet)."""
        self.rate = self._capped(_START_RATE)
        """Current pace, requests per second."""
        self.paused_until = now
        self.next_slot = now
        self._last_start = now
        self._born = now
        self._grown = 0.0  # CUBIC's t: seconds of growth since the last cut
        self._cut_at = -math.inf  # refusals of calls started before this belong to the last cut
        self._recent: deque[bool] = deque(maxlen=_STRAY)  # admitted?, answers of calls started since the cut
        self._admitted: deque[float] = deque()  # when each answer other than 429 in the last second came

    def __repr__(self) -> str:
        limit = "unknown" if self.limit is None else f"{self.limit:.1f}/s"
        return f"RoutePace(rate={self.rate:.1f}/s, limit={limit})"

    def _capped(self, rate: float) -> float:
        return min(max(rate, self.min_rate), self.max_rate)

    # -- starts ---------------------------------------------------------------------

    def ready_at(self, now: float) -> float:
        """When the next call may start."""
        return max(self.paused_until, self.next_slot, now)

    def take_slot(self, now: float) -> None:
        """Start a call now: grow the pace if the gap since the last start used it, take the next slot."""
        gap = now - self._last_start
        if 0 < gap <= _USED / self.rate:  # a longer gap left the pace unused: no growth (RFC 7661)
            self._grown += gap
            if self.limit is None:
                self.rate = self._capped(self.rate * 2 ** min(gap / _DOUBLING, 1))  # a crawl at max_rate: no overflow
            else:
                self.rate = self._capped(self.limit * (1 + _C * (self._grown - _K) ** 3))
        interval = 1.0 / self.rate
        self.next_slot = max(now - interval, self.next_slot) + interval
        self._last_start = now

    def try_start(self, now: float) -> bool:
        """Start a call now if it need not wait (`ready_at`, then `take_slot`); the usual case."""
        if self.ready_at(now) > now:
            return False
        self.take_slot(now)
        return True

    # -- answers --------------------------------------------------------------------

    def _forget(self, now: float) -> None:
        admitted = self._admitted
        while admitted and admitted[0] < now - _WINDOW:
            admitted.popleft()

    def admitted_rate(self, now: float) -> float:
        """Answers other than 429 per second over the last second (over the route's life while shorter)."""
        self._forget(now)
        return len(self._admitted) / max(min(_WINDOW, now - self._born), 1e-3)

    def on_success(self, started: float, now: float) -> None:
        """Record that a call started at ``started`` was admitted."""
        self._admitted.append(now)
        self._forget(now)
        if started >= self._cut_at:
            self._recent.append(True)

    def on_refused(self, started: float, now: float, retry_after: float | None) -> bool:
        """Record that a call started at ``started`` got a 429; return whether it cut the pace."""
        if started < self._cut_at:
            return False
        binding = False in self._recent
        self._recent.append(False)
        if binding:
            self._cut(self.admitted_rate(now), now, retry_after)
        return binding

    def _cut(self, admitted: float, now: float, retry_after: float | None) -> None:
        if admitted == 0 and retry_after is not None and (self.limit or math.inf) > self.min_rate:  # it just closed
            self.paused_until = max(self.paused_until, now + retry_after)
            self.next_slot = max(self.next_slot, self.paused_until)  # the pace resumes from the pause's end
        self.learn(admitted, now)

    def learn(self, limit: float, now: float) -> None:
        """Take ``limit`` (requests per second) as ``w_max``: pace at ``_BETA`` of it, regaining it in ``_K``."""
        self.limit = max(limit, self.min_rate)
        self.rate = self._capped(_BETA * self.limit)
        self._grown = 0.0
        self._cut_at = now
        self._recent.clear()
