"""Options shared by the command lines (``fullstory-async`` and ``python -m fullstory_async.testing``).

The argument types turn the text of an option into a number inside its range, or raise
``argparse.ArgumentTypeError`` (a usage error: exit 2, the option named by argparse).
`add_fake_server_options` declares the fake server's options once, for both. This module
imports no server code, so the CLI loads aiohttp's server only when it serves.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from fullstory_async.testing._routes import OPERATION_NAMES  # names only: no server code


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """Return a parser of integers from ``low`` to ``high`` (no upper bound when ``None``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive(text: str) -> float:
    """Parse a finite number above zero."""
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """Parse a finite number of seconds, zero included."""
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def add_fake_server_options(parser: argparse.ArgumentParser) -> None:
    """Declare the fake server's options (shared by this module and ``fullstory-async fake-server``)."""
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
    parser.add_argument(
        "--limit-operation",
        action="append",
        metavar="NAME",
        choices=sorted(OPERATION_NAMES),
        help="rate limit only this operation, e.g. create_endpoint (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="fault randomness seed (0)")
    parser.add_argument("--endpoints", type=integer(0), default=0, help="pre-create this many endpoints (0)")
    parser.add_argument("--request-log-size", type=integer(0), default=0, help="requests kept in memory (0 = off)")
