"""``fullstory-async send URL``: signed deliveries to a receiver, as Fullstory sends them.

Each delivery is the request `fullstory_async.receiving.signed_delivery` builds (signed
when it leaves, so the signature's timestamp is fresh): the documented sample ``data`` of
the event type, with a new ``id`` and time in it, so that every delivery is a different
event to an inbox that de-duplicates; or the bytes of ``--body FILE``, sent as they are.

Sends are scheduled open-loop: with ``--rate R`` send ``i`` is due at ``start + i / R``,
otherwise as soon as one of ``--concurrency`` slots is free. Latency is measured from the
scheduled time, not from when the request left (so a receiver that falls behind is not
hidden by the sender slowing down: "coordinated omission"); the summary gives its
nearest-rank percentiles, from a histogram whose size does not grow with ``--count``
(`Tally`). Redirects are not followed: a 3xx is the receiver's answer.

Exit status: 0 every answer was 2xx; 1 any other answer or no answer; 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs

from fullstory_async._bulk.desired import did_you_mean
from fullstory_async._bulk.scope import redacted
from fullstory_async.cli._parser import DEFAULT_CONCURRENCY, PROG, UsageError
from fullstory_async.cli._types import integer, positive
from fullstory_async.receiving import sign
from fullstory_async.testing._delivery import encode_envelope
from fullstory_async.testing._samples import SAMPLE_EVENT_NAMES, sample_event_data

DEFAULT_ORG_ID = "o-1A2B3C-na1"
"""The org id of the documented samples (their ``sessionUrl``s)."""
_ANSWER_BODY_LIMIT = 65536
"""Bytes of an answer's body read at most (then the connection is closed): a receiver's body is not a result."""
_TIME_KEYS = ("created", "timestamp")  # the time field of a sample; "timestamp" added when it has none


def options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``send``."""
    parser.add_argument("url", metavar="URL", help="where to POST the deliveries (a running `receive`, your service)")
    parser.add_argument(
        "--secret-env",
        required=True,
        metavar="VAR",
        help="environment variable holding the endpoint secret to sign with",
    )
    parser.add_argument(
        "--event-type",
        default="note.created",
        metavar="NAME",
        help=f"documented event to send, with its sample data (note.created): {', '.join(SAMPLE_EVENT_NAMES)}",
    )
    parser.add_argument("--body", metavar="FILE", help="send the bytes of FILE as the body instead, as they are")
    parser.add_argument("--org-id", default=DEFAULT_ORG_ID, metavar="ORG", help=f"org id to sign as ({DEFAULT_ORG_ID})")
    parser.add_argument("--count", type=integer(1), default=1, metavar="N", help="deliveries to send (1)")
    parser.add_argument("--rate", type=positive, metavar="PER_SECOND", help="deliveries per second (unlimited)")
    parser.add_argument(
        "--concurrency",
        type=integer(1, 1000),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"deliveries in flight ({DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--timeout", type=positive, default=10.0, metavar="SECONDS", help="per delivery (10)")
    parser.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="one JSON object per answer",
    )


@attrs.frozen
class Answer:
    """What one delivery got: the receiver's status, or why there was none; and its latency."""

    number: int
    status: int | None
    latency: float
    """Seconds from the send's scheduled time to the answer (or the failure)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def record(self) -> dict[str, Any]:
        """Return the ``--json`` line."""
        return {
            "n": self.number,
            "status": self.status,
            "latency_ms": round(self.latency * 1000, 3),
            "error": self.error,
        }

    def text(self) -> str:
        """Return the text line."""
        answer = str(self.status) if self.status is not None else f"failed ({self.error})"
        return f"#{self.number}  {answer}  {self.latency * 1000:.1f} ms"


@attrs.define
class Tally:
    """The answers so far: counts by kind, and latencies in a log-bucketed histogram (HdrHistogram's idea).

    A latency is counted in the bucket ``floor(log(latency / 1 µs) / log(1 + PRECISION))``:
    a bucket is 0.1% wide, so a percentile read from one is within 0.1% of the exact one,
    and memory is bounded by the range of latencies (under 25,000 buckets from 1 µs to
    3 hours), never by ``--count``. The maximum is kept exactly.
    """

    PRECISION = 0.001
    answered: int = 0
    ok: int = 0
    errors: int = 0
    max: float = 0.0
    buckets: Counter[int] = attrs.Factory(Counter)

    def add(self, answer: Answer) -> None:
        """Count one answer."""
        self.answered += 1
        self.ok += answer.ok
        self.errors += answer.status is None
        self.max = max(self.max, answer.latency)
        self.buckets[_bucket(answer.latency)] += 1

    def percentile(self, fraction: float) -> float:
        """Return the nearest-rank percentile (within 0.1%, never above the maximum); at least one answer."""
        rank = max(1, math.ceil(fraction * self.answered))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(self.max, _MICROSECOND * (1 + self.PRECISION) ** (bucket + 1))
        return self.max

    def summary(self) -> str:
        """One line: how many answers were 2xx, and the latency percentiles."""
        figures = ", ".join(
            f"{name} {self.percentile(fraction) * 1000:.1f} ms"
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        )
        other = self.answered - self.ok - self.errors
        return f"{self.answered} sent: {self.ok} 2xx, {other} other, {self.errors} no answer; latency {figures}"


_MICROSECOND = 1e-6


def _bucket(latency: float) -> int:
    return math.floor(math.log(max(latency, _MICROSECOND) / _MICROSECOND) / math.log1p(Tally.PRECISION))


def _check_url(url: str) -> None:
    """Refuse a URL that is not absolute http(s) or cannot be parsed (a port, brackets): credentials hidden."""
    try:
        split = urlsplit(url)
        split.port  # noqa: B018 - parsing the port validates it
    except ValueError:  # its text may quote part of a password: not shown
        raise UsageError(f"URL: {redacted(url)} is not a valid URL (check its host and port)") from None
    if split.scheme not in ("http", "https") or not split.hostname:
        raise UsageError(f"URL must be an absolute http(s) URL, got {redacted(url)}")


def _body_maker(args: argparse.Namespace) -> Callable[[], bytes]:
    """Return what makes the body of each delivery."""
    if args.body is not None:
        try:
            with open(args.body, "rb") as file:
                body = file.read()
        except OSError as exc:
            raise UsageError(f"--body: cannot read {args.body}: {exc.strerror or exc}") from None
        return lambda: body
    if args.event_type not in SAMPLE_EVENT_NAMES:
        raise UsageError(
            f"--event-type: no documented event {args.event_type!r}"
            f"{did_you_mean(args.event_type, SAMPLE_EVENT_NAMES)}; "
            f"one of {', '.join(SAMPLE_EVENT_NAMES)} (or send your own with --body FILE)"
        )

    def generated() -> bytes:
        data = sample_event_data(args.event_type)
        data["id"] = str(uuid.uuid4())  # a new event each time: an inbox stores each one
        time_key = next((key for key in _TIME_KEYS if key in data), "timestamp")
        data[time_key] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return encode_envelope(args.event_type, data)

    return generated


async def _deliver(
    session: aiohttp.ClientSession, url: str, body: bytes, secret: str, org_id: str, number: int, due: float
) -> Answer:
    headers = {"Content-Type": "application/json", "Fullstory-Signature": sign(body, secret, org_id)}
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            answer = Answer(number, response.status, time.monotonic() - due)  # the answer: its status line
            read = 0
            async for chunk in response.content.iter_any():  # drained, so the connection is reused
                read += len(chunk)
                if read > _ANSWER_BODY_LIMIT:  # a large (or endless) body is not read: memory stays flat
                    response.close()
                    break
            return answer
    except TimeoutError:
        return Answer(number, None, time.monotonic() - due, "timed out")
    except aiohttp.ClientError as exc:
        text = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        return Answer(number, None, time.monotonic() - due, _without_credentials(text, url))


def _without_credentials(text: str, url: str) -> str:
    """``text`` with the user and password of ``url`` (aiohttp quotes a URL in some errors) as ``***``."""
    split = urlsplit(url)
    for credential in (split.password, split.username):
        if credential:
            text = text.replace(credential, "***")
    return text


async def _send(args: argparse.Namespace, secret: str, make_body: Callable[[], bytes]) -> Tally:
    tally = Tally()
    slots = asyncio.Semaphore(args.concurrency)
    out = sys.stdout

    def show(answer: Answer) -> None:
        tally.add(answer)
        line = json.dumps(answer.record()) if args.output == "json" else answer.text()
        print(line, file=out, flush=True)

    async def one(session: aiohttp.ClientSession, number: int, scheduled: float) -> None:
        try:
            show(await _deliver(session, args.url, make_body(), secret, args.org_id, number, scheduled))
        finally:
            slots.release()

    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=args.concurrency)  # aiohttp's own cap (100) would queue the rest unseen
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
            asyncio.TaskGroup() as tasks,
        ):
            start = time.monotonic()
            for number in range(1, args.count + 1):
                due = None if args.rate is None else start + (number - 1) / args.rate
                if due is not None:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                await slots.acquire()
                tasks.create_task(one(session, number, time.monotonic() if due is None else due))
    except* BrokenPipeError:  # `send ... | head -1`: the CLI ends quietly (exit 1)
        raise BrokenPipeError from None
    return tally


def run(args: argparse.Namespace) -> int:
    """Send ``--count`` signed deliveries to ``URL``; print each answer, then the latency summary."""
    _check_url(args.url)
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise UsageError(f"--secret-env: environment variable {args.secret_env} is not set")
    tally = asyncio.run(_send(args, secret, _body_maker(args)))
    if args.count > 1:
        print(f"{PROG}: {tally.summary()}", file=sys.stderr, flush=True)
    return 0 if tally.ok == args.count else 1
