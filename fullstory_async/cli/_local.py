"""What the local commands share (``receive``, ``forward``, ``inbox ...``): exit codes, the inbox option, stderr logs.

These commands never call the Fullstory API, so they never start the embedded fake server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fullstory_async._exceptions import FullstoryError, InvalidArgumentError

INBOX_URL_HELP = "inbox URL: sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db"


def local(run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[[argparse.Namespace], int]:
    """Run one of these commands: usage problems exit 2, inbox and OS failures 1, Ctrl-C 130."""

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


def env_secret(flag: str, name: str) -> str:
    """Return the value of environment variable ``name``; a usage error naming ``flag`` when unset or empty."""
    value = os.environ.get(name)
    if not value:
        raise InvalidArgumentError(flag, f"environment variable {name} is not set or empty")
    return value


@contextlib.contextmanager
def stderr_log() -> Iterator[None]:
    """Send the receiving side's log lines (refusals, retries, dead letters) to stderr while the command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fullstory-async: %(message)s"))
    logger = logging.getLogger("fullstory_async.receiving")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
