"""`ReceivingMetrics`: running totals of deliveries and handler runs, as a thin adapter on `ReceivingHooks`.

The receiving side's counterpart of the client's `Metrics`; `prometheus` writes them (and the
inbox's depth, from `Inbox.stats`) in the Prometheus text exposition format, by hand: no
client library. Names, types and labels are listed in docs/production.md.
"""

from __future__ import annotations

import time

import attrs

from fullstory_async.receiving._hooks import (
    REFUSAL_REASONS,
    RUN_OUTCOMES,
    Delivery,
    DeliveryResult,
    HandlerRun,
    ReceivingHooks,
    RunResult,
)
from fullstory_async.receiving._inbox import InboxStats

COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the commit latency histogram: 1 ms (a group commit) to 5 s (a held lock)."""


@attrs.define
class ReceivingMetrics(ReceivingHooks):
    """Running totals over the receivers and workers it is given to (``hooks=[metrics]``).

    Read the fields (or `snapshot`), or serve `prometheus` to a Prometheus scraper. Every field
    only grows.
    """

    accepted: int = 0
    """Deliveries verified and committed (or, without an inbox, handled by the callback)."""

    duplicates: int = 0
    """Deliveries acknowledged as repeats of a stored one, not stored again."""

    refusals: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(REFUSAL_REASONS, 0))
    """Deliveries refused, by reason (`REFUSAL_REASONS`)."""

    commits: int = 0
    """Inbox commits timed (a duplicate's look-up included)."""

    commit_seconds: float = 0.0
    """Seconds those commits took."""

    commit_buckets: list[int] = attrs.field(factory=lambda: [0] * len(COMMIT_BUCKETS))
    """Commits that took at most each of `COMMIT_BUCKETS` seconds (cumulative, as Prometheus histograms)."""

    handler_runs: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(RUN_OUTCOMES, 0))
    """Handler runs, by outcome (``ok``, ``error``, ``timeout``, ``cancelled``, ``not_run``)."""

    retries: int = 0
    """Runs that failed and were scheduled again."""

    dead_letters: int = 0
    """Events made dead letters."""

    def on_delivery_end(self, delivery: Delivery, result: DeliveryResult) -> None:
        """Count the delivery by outcome, and time its commit."""
        if result.outcome == "refused":
            reason = result.reason or "aborted"
            self.refusals[reason] = self.refusals.get(reason, 0) + 1
        elif result.outcome == "duplicate":
            self.duplicates += 1
        else:
            self.accepted += 1
        seconds = result.commit_duration
        if seconds is not None:
            self.commits += 1
            self.commit_seconds += seconds
            for n, bound in enumerate(COMMIT_BUCKETS):
                self.commit_buckets[n] += seconds <= bound

    def on_run_end(self, run: HandlerRun, result: RunResult) -> None:
        """Count the run by outcome, and what it led to."""
        self.handler_runs[result.outcome] = self.handler_runs.get(result.outcome, 0) + 1
        self.retries += result.recorded == "retry"
        self.dead_letters += result.recorded == "dead"

    def snapshot(self) -> dict[str, object]:
        """Return every counter by name, e.g. to export or log them at once."""
        return attrs.asdict(self)

    def prometheus(self, stats: InboxStats | None = None, *, now: float | None = None) -> str:
        """Return the metrics in the Prometheus text exposition format (version 0.0.4).

        Pass the inbox's `Inbox.stats` for its gauges (events by status, oldest pending age,
        measured against ``now``, the wall clock by default); without them they are left out.
        """
        out = _Exposition()
        out.family("fullstory_receiver_deliveries_total", "counter", "Deliveries answered, by outcome.")
        out.sample("fullstory_receiver_deliveries_total", self.accepted, outcome="accepted")
        out.sample("fullstory_receiver_deliveries_total", self.duplicates, outcome="duplicate")
        out.sample("fullstory_receiver_deliveries_total", sum(self.refusals.values()), outcome="refused")
        out.family("fullstory_receiver_refusals_total", "counter", "Deliveries refused, by reason.")
        for reason, count in self.refusals.items():
            out.sample("fullstory_receiver_refusals_total", count, reason=reason)
        out.family("fullstory_receiver_commit_seconds", "histogram", "Seconds the inbox took to commit a delivery.")
        for bound, count in zip(COMMIT_BUCKETS, self.commit_buckets, strict=True):
            out.sample("fullstory_receiver_commit_seconds_bucket", count, le=_number(bound))
        out.sample("fullstory_receiver_commit_seconds_bucket", self.commits, le="+Inf")
        out.sample("fullstory_receiver_commit_seconds_sum", self.commit_seconds)
        out.sample("fullstory_receiver_commit_seconds_count", self.commits)
        out.family("fullstory_worker_handler_runs_total", "counter", "Handler runs, by outcome.")
        for outcome, count in self.handler_runs.items():
            out.sample("fullstory_worker_handler_runs_total", count, outcome=outcome)
        out.family("fullstory_worker_retries_total", "counter", "Handler runs that failed and were scheduled again.")
        out.sample("fullstory_worker_retries_total", self.retries)
        out.family("fullstory_worker_dead_letters_total", "counter", "Events made dead letters.")
        out.sample("fullstory_worker_dead_letters_total", self.dead_letters)
        if stats is not None:
            out.family("fullstory_inbox_events", "gauge", "Events in the inbox, by status.")
            for status in ("pending", "done", "dead"):
                out.sample("fullstory_inbox_events", getattr(stats, status), status=status)
            oldest = stats.oldest_pending_at
            age = 0.0 if oldest is None else max(0.0, (time.time() if now is None else now) - oldest)
            out.family(
                "fullstory_inbox_oldest_pending_age_seconds", "gauge", "Age of the oldest pending event (0: none)."
            )
            out.sample("fullstory_inbox_oldest_pending_age_seconds", age)
        return out.text()


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))  # every value here is finite


class _Exposition:
    """Lines of the text format: ``# HELP`` and ``# TYPE`` once per family, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        label_text = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
        self._lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
