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
import hmac
import json
import signal
import sys
from typing import Any

import attrs
from aiohttp import web

from fullstory_async._auth import _is_loopback as is_loopback
from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli._forward import forward_target_options, forward_worker, forwarder_from
from fullstory_async.cli._local import INBOX_URL_HELP, env_secret, local, stderr_log
from fullstory_async.cli._types import integer, non_negative, positive
from fullstory_async.receiving import (
    Inbox,
    InboxError,
    InboxStats,
    ReceiverSettings,
    ReceivingMetrics,
    add_webhook_route,
    open_inbox,
)
from fullstory_async.receiving._forward import shown_url
from fullstory_async.receiving._inbox import DEFAULT_COMMIT_TIMEOUT
from fullstory_async.receiving._limits import ConnectionLimits, check_descriptors, serve
from fullstory_async.receiving._postgres import redact
from fullstory_async.receiving._settings import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES
from fullstory_async.receiving._signature import DEFAULT_TOLERANCE


def _org_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def receive_options(receive: argparse.ArgumentParser) -> None:
    """Declare the options of ``receive``."""
    receive.description = (
        "Verify Fullstory webhook deliveries and store them in a durable inbox; "
        "each is acknowledged (202) only once committed. Process them with InboxWorker."
    )
    receive.add_argument("--inbox", required=True, metavar="URL", help=INBOX_URL_HELP)
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
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics port binds (127.0.0.1: this machine only; any other needs --metrics-token-env)",
    )
    receive.add_argument(
        "--metrics-token-env",
        metavar="VAR",
        help="environment variable holding a token every scrape must send (Authorization: Bearer <token>)",
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
    forward_target_options(receive, to="--forward-to", required=False)


def inbox_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox export|stats``."""
    action.add_argument("--inbox", required=True, metavar="URL", help=INBOX_URL_HELP)


def _metrics_token(args: argparse.Namespace) -> bytes | None:
    """Return the token every scrape must send; required off loopback (nothing served there is read without one)."""
    if args.metrics_token_env is not None:
        return env_secret("--metrics-token-env", args.metrics_token_env).encode()
    if args.metrics_port is not None and not is_loopback(args.metrics_host):
        raise InvalidArgumentError(
            "--metrics-host",
            f"{args.metrics_host} is not loopback: anyone who reaches it would read the metrics; "
            "give --metrics-token-env VAR (a token your scraper sends as Authorization: Bearer <token>)",
        )
    return None


def _url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


_METRICS_CONNECTIONS = 8
"""The metrics port's own connection cap: a scrape needs one, and the port must not take the
descriptors ``--max-connections`` counts on (a cap as large would double them)."""
_STATS_TIMEOUT = 2.0
"""Seconds a scrape waits for the inbox's counts (well inside Prometheus's 10 s scrape timeout)."""
_PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metrics_app(metrics: ReceivingMetrics, inbox: Inbox, token: bytes | None = None) -> web.Application:
    """``GET /metrics``: the counters, and the inbox gauges when the inbox answers within `_STATS_TIMEOUT`.

    With a ``token``, a scrape without ``Authorization: Bearer <token>`` is answered ``401``.

    The counts are read *single flight*: one `Inbox.stats` at a time, shared by every scrape that
    arrives while it runs (and left running for the next scrape when it outlives this one's
    wait). A count scans the inbox and shares the database with the deliveries' commits, so the
    cost of scraping is one count at a time, however many scrapes come.
    """
    counting: asyncio.Future[InboxStats] | None = None

    async def scrape(request: web.Request) -> web.Response:
        nonlocal counting
        if token is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode("utf-8", "surrogateescape"), b"Bearer " + token
        ):
            return web.Response(status=401, text="a bearer token is required\n", headers={"WWW-Authenticate": "Bearer"})
        if counting is None or counting.done():
            counting = asyncio.ensure_future(inbox.stats())
            counting.add_done_callback(_retrieve)
        try:
            stats = await asyncio.wait_for(asyncio.shield(counting), _STATS_TIMEOUT)
        except (InboxError, TimeoutError):  # the counters still say what happened; the gauges are left out
            stats = None
        return web.Response(body=metrics.prometheus(stats).encode(), headers={"Content-Type": _PROMETHEUS_TYPE})

    async def stop_counting(_app: web.Application) -> None:
        if counting is not None:
            counting.cancel()

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.on_cleanup.append(stop_counting)
    return app


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared count's failure as seen (every scrape may have stopped waiting for it)."""
    if not future.cancelled():
        future.exception()


def _forwarding(args: argparse.Namespace) -> list[tuple[str, object]]:
    """Return the forwarding options that have no default (given without ``--forward-to``, they would do nothing)."""
    names = ("sign_secret_env", "ca_file", "client_cert", "client_key", "allow_insecure_http")
    return [(f"--{name.replace('_', '-')}", getattr(args, name)) for name in names]


async def _receive(args: argparse.Namespace) -> int:
    secrets = [env_secret("--secret-env", name) for name in args.secret_envs]
    metrics_token = _metrics_token(args)
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    check_descriptors(args.max_connections)
    limits = ConnectionLimits(**{name: getattr(args, name) for name in attrs.fields_dict(ConnectionLimits)})
    settings = ReceiverSettings(
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        tolerance=args.tolerance or None,
        org_id=args.org_id,
    )
    forwarder = forwarder_from(args, to="--forward-to") if args.forward_to is not None else None
    if forwarder is None and (given := [f for f, v in _forwarding(args) if v]):
        raise InvalidArgumentError(given[0], "is an option of forwarding: it needs --forward-to URL")
    with stderr_log():
        async with (
            open_inbox(args.inbox, commit_timeout=args.commit_timeout) as inbox,
            contextlib.AsyncExitStack() as exits,
        ):
            app = web.Application()
            metrics = ReceivingMetrics()
            hooks = [metrics] if args.metrics_port is not None else []
            receiver = add_webhook_route(app, path, secrets, inbox=inbox, settings=settings, hooks=hooks)
            banner = [f"into {redact(args.inbox)}"]
            if args.metrics_port is not None:
                metrics_limits = attrs.evolve(limits, max_connections=_METRICS_CONNECTIONS)
                metrics_port = await exits.enter_async_context(
                    serve(
                        _metrics_app(metrics, inbox, metrics_token),
                        args.metrics_host,
                        args.metrics_port,
                        metrics_limits,
                    )
                )
                banner.append(f"metrics on {_url(args.metrics_host, metrics_port, '/metrics')}")
            worker = None
            if forwarder is not None:
                await exits.enter_async_context(forwarder)
                worker = forward_worker(inbox, forwarder, args, hooks=hooks)
                banner.append(f"forwarding to {shown_url(args.forward_to)}")
            async with serve(app, args.host, args.port, limits) as port:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                forwarding = None if worker is None else loop.create_task(worker.run(), name="fullstory-forward")
                # The banner says "ready": a SIGTERM sent as soon as it is read must drain, not kill.
                print(f"receiving on {_url(args.host, port, path)} {banner[0]}", *banner[1:], sep="\n", flush=True)
                await stop.wait()
                print("fullstory-async: draining: new deliveries get 503", file=sys.stderr, flush=True)
                await receiver.aclose()
                if worker is not None and forwarding is not None:
                    await worker.stop()
                    await forwarding
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
    print(json.dumps(stats.to_json()))
    return 0


receive = local(_receive)
"""``fullstory-async receive``."""
inbox_export = local(_export)
"""``fullstory-async inbox export``."""
inbox_stats = local(_stats)
"""``fullstory-async inbox stats``."""
