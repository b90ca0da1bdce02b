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

from fullstory_async.testing._options import add_fake_server_options
from fullstory_async.testing._ratelimit import RateLimit
from fullstory_async.testing._server import FakeFullstory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fullstory_async.testing",
        description="Serve a fake Fullstory Webhooks v1 API for tests and local development.",
    )
    add_fake_server_options(parser)
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


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; return 0, or 2 (a message on stderr) when the address cannot be bound."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 2
    print("stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
