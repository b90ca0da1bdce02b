"""Run the fake standalone: ``python -m fullstory_async.testing --port 8080``.

Prints ``FULLSTORY_BASE_URL=...``, ``FULLSTORY_API_KEY=...`` and
``FULLSTORY_READ_ONLY_API_KEY=...``, one line each, then serves until Ctrl-C or SIGTERM
and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from fullstory_async.testing._ratelimit import RateLimit
from fullstory_async.testing._routes import OPERATION_NAMES
from fullstory_async.testing._server import FakeFullstory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fullstory_async.testing",
        description="Serve a fake Fullstory Webhooks v1 API for tests and local development.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0 = a free one)")
    parser.add_argument("--api-key", help="admin key to accept (default: random)")
    parser.add_argument("--read-only-api-key", help="read-only key to accept (default: random)")
    parser.add_argument(
        "--duplicate-url",
        choices=("error", "replace", "return_existing", "allow"),
        default="error",
        help="what a create with a URL in use does (default: error = 400 already_exists)",
    )
    parser.add_argument("--rate", type=float, help="rate limit: requests per second (off)")
    parser.add_argument("--burst", type=int, default=10, help="rate limit burst (10)")
    parser.add_argument(
        "--fixed-window", action="store_true", help="rate limit: at most --rate requests per whole second"
    )
    parser.add_argument("--per-operation", action="store_true", help="rate limit: one budget per operation")
    parser.add_argument(
        "--limit-operation",
        action="append",
        metavar="NAME",
        choices=sorted(OPERATION_NAMES),
        help="rate limit only this operation, e.g. create_endpoint (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="fault randomness seed (0)")
    parser.add_argument("--endpoints", type=int, default=0, help="pre-create this many endpoints (0)")
    parser.add_argument("--request-log-size", type=int, default=0, help="requests kept in memory (0 = off)")
    return parser


def _rate_limit(args: argparse.Namespace) -> RateLimit | None:
    if not args.rate:
        return None
    return RateLimit(
        args.rate,
        args.burst,
        per_operation=args.per_operation,
        fixed_window=args.fixed_window,
        operations=args.limit_operation,
    )


async def serve(args: argparse.Namespace) -> None:
    """Start the fake, print where it is, wait for SIGINT/SIGTERM, stop it."""
    fake = FakeFullstory(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        read_only_api_key=args.read_only_api_key,
        duplicate_url=args.duplicate_url,
        rate_limit=_rate_limit(args),
        seed=args.seed,
        request_log_size=args.request_log_size,
    )
    for i in range(args.endpoints):
        fake.add_endpoint(f"https://example.com/hooks/{i}", secret=f"secret-{i}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
            loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"FULLSTORY_BASE_URL={fake.url}", flush=True)
        print(f"FULLSTORY_API_KEY={fake.api_key}", flush=True)
        print(f"FULLSTORY_READ_ONLY_API_KEY={fake.read_only_api_key}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
