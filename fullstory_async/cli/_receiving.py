"""``fullstory-async receive`` (a durable webhook sink) and ``fullstory-async inbox export|stats|requeue``.

These commands never talk to the Fullstory API, so they never start the embedded fake
server. ``receive`` acknowledges a delivery only after it is committed to the inbox,
prints its bound URL on stdout (handy with ``--port 0``), logs each refusal on one
rate-limited stderr line, and on SIGTERM or SIGINT answers ``503`` to new deliveries,
lets those in progress commit, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from fullstory_async._exceptions import FullstoryError, InvalidArgumentError
from fullstory_async.cli._types import integer, non_negative
from fullstory_async.receiving import open_inbox
from fullstory_async.receiving._postgres import redact
from fullstory_async.receiving._receiver import DEFAULT_MAX_BODY_BYTES, add_webhook_route
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


def inbox_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox export|stats``."""
    action.add_argument("--inbox", required=True, metavar="URL", help=_URL_HELP)


def requeue_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox requeue``."""
    inbox_options(action)
    action.add_argument("--dead", action="store_true", required=True, help="requeue every dead event")


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


async def _receive(args: argparse.Namespace) -> int:
    secrets = [_secret(name) for name in args.secret_envs]
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fullstory-async: %(message)s"))
    logger = logging.getLogger("fullstory_async.receiving")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with open_inbox(args.inbox) as inbox:
            app = web.Application()
            receiver = add_webhook_route(
                app,
                path,
                secrets,
                inbox=inbox,
                max_body_bytes=args.max_body_bytes,
                tolerance=args.tolerance or None,
                org_id=args.org_id,
            )
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            try:
                site = web.TCPSite(runner, args.host, args.port)
                await site.start()
                port = runner.addresses[0][1]
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                # The banner says "ready": a SIGTERM sent as soon as it is read must drain, not kill.
                print(f"receiving on {_url(args.host, port, path)} into {redact(args.inbox)}", flush=True)
                await stop.wait()
                print("fullstory-async: draining: new deliveries get 503", file=sys.stderr, flush=True)
                await receiver.aclose()
            finally:
                await runner.cleanup()
    finally:
        logger.removeHandler(handler)
    return 0


async def _export(args: argparse.Namespace) -> int:
    async with open_inbox(args.inbox, retention=None) as inbox:
        async for record in inbox.export():
            sys.stdout.write(json.dumps(record.export_line(), ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


async def _stats(args: argparse.Namespace) -> int:
    async with open_inbox(args.inbox, retention=None) as inbox:
        stats = await inbox.stats()
    record = {"pending": stats.pending, "done": stats.done, "dead": stats.dead}
    print(json.dumps({**record, "oldest_pending_at": stats.oldest_pending_at}))
    return 0


async def _requeue(args: argparse.Namespace) -> int:
    async with open_inbox(args.inbox, retention=None) as inbox:
        count = await inbox.requeue_dead()
    print(f"requeued {count} dead event(s)")
    return 0


receive = _local(_receive)
"""``fullstory-async receive``."""
inbox_export = _local(_export)
"""``fullstory-async inbox export``."""
inbox_stats = _local(_stats)
"""``fullstory-async inbox stats``."""
inbox_requeue = _local(_requeue)
"""``fullstory-async inbox requeue --dead``."""
