"""``fullstory-async receive`` (a durable webhook sink) and ``fullstory-async inbox export|stats``.

The ``inbox`` commands never create nor migrate an inbox (``open_inbox(create=False)``): a
mistyped path or another application's database is an error, not a new empty inbox.

These commands never talk to the Fullstory API, so they never start the embedded fake
server. ``receive`` acknowledges a delivery only after it is committed to the inbox,
prints its bound URL on stdout (handy with ``--port 0``), logs each refusal on one
rate-limited stderr line, and on SIGTERM or SIGINT answers ``503`` to new deliveries,
lets those in progress commit, and exits 0. With ``--metrics-port`` it also serves its
`ReceivingMetrics` and the inbox's depth as Prometheus text on ``GET /metrics`` (on
127.0.0.1 unless ``--metrics-host`` says otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from aiohttp import web

from fullstory_async._exceptions import FullstoryError, InvalidArgumentError
from fullstory_async._options import integer, non_negative, positive
from fullstory_async.receiving import (
    Inbox,
    InboxError,
    ReceiverSettings,
    ReceivingMetrics,
    add_webhook_route,
    open_inbox,
)
from fullstory_async.receiving._inbox import DEFAULT_COMMIT_TIMEOUT, rfc3339
from fullstory_async.receiving._limits import ConnectionLimits, check_descriptors, serve
from fullstory_async.receiving._postgres import redact
from fullstory_async.receiving._settings import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES
from fullstory_async.receiving._signature import DEFAULT_TOLERANCE


def _org_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


_URL_HELP = "inbox URL: sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db"


def receive_options(receive: argparse.ArgumentParser) -> None:
    """Declare the options of ``receive``."""
    receive.description = (
        "Verify Fullstory webhook deliveries and store them in a durable inbox; "
        "each is acknowledged (202) only once committed. Process them with InboxWorker."
    )
    receive.add_argument("--inbox", required=True, metavar="URL", help=_URL_HELP)
    receive.add_argument(
        "--secret-env",
        dest="secret_envs",
        action="append",
        required=True,
        metavar="VAR",
        help="environment variable holding an endpoint secret (repeat while rotating)",
    )
    receive.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    receive.add_argument("--port", type=integer(0, 65535), default=8080, help="port (8080; 0 = a free one)")
    receive.add_argument("--path", default="/", help="path deliveries are POSTed to (/); GET <path>/health")
    receive.add_argument("--org-id", type=_org_id, metavar="ORG", help="refuse deliveries signed for another org")
    receive.add_argument(
        "--max-body-bytes", type=integer(1), default=DEFAULT_MAX_BODY_BYTES, metavar="N", help="413 above (1 MiB)"
    )
    receive.add_argument(
        "--tolerance",
        type=non_negative,
        default=DEFAULT_TOLERANCE,
        metavar="SECONDS",
        help=f"replay window of the signature timestamp ({DEFAULT_TOLERANCE:g})",
    )
    receive.add_argument(
        "--commit-timeout",
        type=positive,
        default=DEFAULT_COMMIT_TIMEOUT,
        metavar="SECONDS",
        help=f"an inbox commit that takes longer is answered 503 with Retry-After ({DEFAULT_COMMIT_TIMEOUT:g})",
    )
    receive.add_argument(
        "--metrics-port",
        type=integer(0, 65535),
        metavar="PORT",
        help="serve Prometheus metrics on GET /metrics at this port (off by default; 0 = a free one)",
    )
    receive.add_argument(
        "--metrics-host", default="127.0.0.1", help="address the metrics port binds (127.0.0.1: this machine only)"
    )
    limits = ConnectionLimits()
    bounds = (
        ("--head-timeout", positive, limits.head_timeout, "SECONDS", "to send a complete request head"),
        ("--body-timeout", positive, DEFAULT_BODY_TIMEOUT, "SECONDS", "to send the whole body (then 408)"),
        ("--keepalive-timeout", positive, limits.keepalive_timeout, "SECONDS", "an idle connection stays open"),
        ("--max-connections", integer(1), limits.max_connections, "N", "open at once (see docs/receiving.md)"),
        ("--max-headers", integer(1), limits.max_headers, "N", "header lines per request (400 above)"),
        ("--max-header-bytes", integer(1), limits.max_header_bytes, "N", "bytes in one header line (400 above)"),
    )
    for flag, kind, default, metavar, text in bounds:
        receive.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{text} ({default:g})")


def inbox_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox export|stats``."""
    action.add_argument("--inbox", required=True, metavar="URL", help=_URL_HELP)


def _local(run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[[argparse.Namespace], int]:
    """Run one of these commands: usage problems exit 2, inbox and OS failures 1."""

    def main(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(run(args))
        except KeyboardInterrupt:
            return 130
        except InvalidArgumentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (FullstoryError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return main


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise InvalidArgumentError("--secret-env", f"environment variable {name} is not set or empty")
    return value


def _url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


_STATS_TIMEOUT = 2.0
"""Seconds a scrape waits for the inbox's counts (well inside Prometheus's 10 s scrape timeout)."""
_PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metrics_app(metrics: ReceivingMetrics, inbox: Inbox) -> web.Application:
    """``GET /metrics``: the counters, and the inbox gauges when the inbox answers within `_STATS_TIMEOUT`."""

    async def scrape(_request: web.Request) -> web.Response:
        try:
            stats = await asyncio.wait_for(inbox.stats(), _STATS_TIMEOUT)
        except (InboxError, TimeoutError):  # the counters still say what happened; the gauges are left out
            stats = None
        return web.Response(body=metrics.prometheus(stats).encode(), headers={"Content-Type": _PROMETHEUS_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def _receive(args: argparse.Namespace) -> int:
    secrets = [_secret(name) for name in args.secret_envs]
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    check_descriptors(args.max_connections)
    limits = ConnectionLimits(**{name: getattr(args, name) for name in attrs.fields_dict(ConnectionLimits)})
    settings = ReceiverSettings(
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        tolerance=args.tolerance or None,
        org_id=args.org_id,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fullstory-async: %(message)s"))
    logger = logging.getLogger("fullstory_async.receiving")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with (
            open_inbox(args.inbox, commit_timeout=args.commit_timeout) as inbox,
            contextlib.AsyncExitStack() as exits,
        ):
            app = web.Application()
            metrics = ReceivingMetrics()
            hooks = [metrics] if args.metrics_port is not None else []
            receiver = add_webhook_route(app, path, secrets, inbox=inbox, settings=settings, hooks=hooks)
            metrics_url = None
            if args.metrics_port is not None:
                metrics_port = await exits.enter_async_context(
                    serve(_metrics_app(metrics, inbox), args.metrics_host, args.metrics_port, limits)
                )
                metrics_url = _url(args.metrics_host, metrics_port, "/metrics")
            async with serve(app, args.host, args.port, limits) as port:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                # The banner says "ready": a SIGTERM sent as soon as it is read must drain, not kill.
                print(f"receiving on {_url(args.host, port, path)} into {redact(args.inbox)}", flush=True)
                if metrics_url is not None:
                    print(f"metrics on {metrics_url}", flush=True)
                await stop.wait()
                print("fullstory-async: draining: new deliveries get 503", file=sys.stderr, flush=True)
                await receiver.aclose()
    finally:
        logger.removeHandler(handler)
    return 0


async def _export(args: argparse.Namespace) -> int:
    async with open_inbox(args.inbox, retention=None, create=False) as inbox:
        async for record in inbox.export():
            sys.stdout.write(json.dumps(record.export_line(), ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


async def _stats(args: argparse.Namespace) -> int:
    async with open_inbox(args.inbox, retention=None, create=False) as inbox:
        stats = await inbox.stats()
    oldest, age = stats.oldest_pending_at, stats.oldest_pending_age
    record = {
        "pending": stats.pending,
        "done": stats.done,
        "dead": stats.dead,
        "oldest_pending_at": None if oldest is None else rfc3339(oldest),
        "oldest_pending_age_seconds": None if age is None else round(age, 3),
    }
    print(json.dumps(record))
    return 0


receive = _local(_receive)
"""``fullstory-async receive``."""
inbox_export = _local(_export)
"""``fullstory-async inbox export``."""
inbox_stats = _local(_stats)
"""``fullstory-async inbox stats``."""
