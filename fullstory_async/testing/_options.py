"""The fake server's command-line options, declared once for both command lines.

Used by ``python -m fullstory_async.testing`` and ``fullstory-async fake-server``.

This module imports no server code, so the CLI loads aiohttp's server only when it serves.
"""

from __future__ import annotations

import argparse

from fullstory_async.cli._types import integer, positive
from fullstory_async.testing._routes import OPERATION_NAMES  # names only: no server code

_OPERATIONS = sorted(OPERATION_NAMES)


def add_fake_server_options(parser: argparse.ArgumentParser) -> None:
    """Declare the fake server's options (shared by both command lines)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1; 0.0.0.0 = every interface)")
    parser.add_argument("--port", type=integer(0, 65535), default=8080, help="port (8080; 0 = a free one)")
    parser.add_argument("--api-key", help="admin key to accept (default: random)")
    parser.add_argument("--read-only-api-key", help="read-only key to accept (default: random)")
    parser.add_argument(
        "--duplicate-url",
        choices=("error", "replace", "return_existing", "allow"),
        default="error",
        help="what a create with a URL in use does (default: error = 400 already_exists)",
    )
    parser.add_argument("--rate", type=positive, help="rate limit: requests per second (off)")
    parser.add_argument("--burst", type=integer(0), default=10, help="rate limit burst (10)")
    parser.add_argument(
        "--fixed-window", action="store_true", help="rate limit: at most --rate requests per whole second"
    )
    parser.add_argument("--per-operation", action="store_true", help="rate limit: one budget per operation")
    only = "rate limit only this operation, e.g. create_endpoint (repeatable; default: all)"
    parser.add_argument("--limit-operation", action="append", metavar="NAME", choices=_OPERATIONS, help=only)
    parser.add_argument("--seed", type=int, default=0, help="fault randomness seed (0)")
    parser.add_argument("--endpoints", type=integer(0), default=0, help="pre-create this many endpoints (0)")
    parser.add_argument("--request-log-size", type=integer(0), default=0, help="requests kept in memory (0 = off)")
