"""The ``fullstory-async`` command line (also ``python -m fullstory_async``), thin over the public API.

::

    fullstory-async apply examples/endpoints.toml --yes    # no key set: the embedded fake server
    FULLSTORY_API_KEY=... fullstory-async endpoints list --json

Exit status: 0 all ok; 1 some items failed, an API call failed or a confirmation was
declined; 2 bad usage or a bad file; 3 ``plan --exit-code`` with changes pending; 130
interrupted (Ctrl-C). Commands are registered once, in ``_registry.COMMANDS``. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from fullstory_async import DesiredStateError, FullstoryError, InvalidArgumentError
from fullstory_async.cli._output import Console, error_text, tolerant
from fullstory_async.cli._parser import UsageError, build_parser
from fullstory_async.cli._registry import BY_NAME, COMMANDS
from fullstory_async.cli._target import open_target

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """Return the parser of every registered command."""
    return build_parser(COMMANDS)


@contextlib.contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """``-v``: the SDK's log lines (retries, rate limiting; metadata only) on stderr; ``-vv``: debug."""
    if not verbosity:
        yield
        return
    logger = logging.getLogger("fullstory_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fullstory-async: %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _run(args: argparse.Namespace, console: Console) -> int:
    run = BY_NAME[args.command].run
    assert run is not None
    async with open_target(args, console) as target:
        return await run(args, target)


def _quiet_stdout() -> None:
    """After a closed pipe (`fullstory-async endpoints list | head`): no second error when stdout is flushed."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        stdout = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fullstory-async`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    command = BY_NAME[args.command]
    console = Console(tolerant(sys.stdout), tolerant(sys.stderr), json_output=args.output == "json")
    try:
        if command.local is not None:
            return command.local(args)
        with _logging(args.verbose):
            return asyncio.run(_run(args, console))
    except KeyboardInterrupt:
        console.notice("interrupted")
        return 130
    except (UsageError, DesiredStateError, InvalidArgumentError) as exc:
        console.error(str(exc), exc)
        return 2
    except FullstoryError as exc:
        console.error(error_text(exc), exc)
        return 1
    except BrokenPipeError:
        _quiet_stdout()
        return 1
