"""The ``fullstory-async`` command line (also ``python -m fullstory_async``), thin over the public API.

::

    fullstory-async apply examples/endpoints.toml --yes    # no key set: the embedded fake server
    FULLSTORY_API_KEY=... fullstory-async endpoints list --json

Exit status: 0 all ok; 1 some items failed, an API call failed or a confirmation was
declined; 2 bad usage or a bad file; 130 interrupted (Ctrl-C). See ``docs/cli.md``.
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
from fullstory_async.cli import _commands, _jobs, _receiving
from fullstory_async.cli._output import Console, error_text
from fullstory_async.cli._parser import UsageError, build_parser
from fullstory_async.cli._target import open_target

__all__ = ["main"]

_COMMANDS: dict[str, _commands.Command] = {
    "endpoints list": _commands.endpoints_list,
    "endpoints get": _commands.endpoints_get,
    "endpoints create": _commands.endpoints_create,
    "endpoints update": _commands.endpoints_update,
    "endpoints delete": _commands.endpoints_delete,
    "event-types": _commands.event_types,
    "subcategories": _commands.subcategories,
    "provision": _jobs.provision,
    "plan": _jobs.plan,
    "apply": _jobs.apply,
}


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
    name = f"{args.command} {args.action}" if args.command == "endpoints" else args.command
    async with open_target(args, console) as target:
        return await _COMMANDS[name](args, target)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fullstory-async`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.command in _receiving.COMMANDS:  # no API, no fake server
        return _receiving.main(args)
    if args.command == "fake-server":
        try:
            return _commands.fake_server(args)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    console = Console(sys.stdout, sys.stderr, json_output=args.output == "json")
    try:
        with _logging(args.verbose):
            return asyncio.run(_run(args, console))
    except KeyboardInterrupt:
        console.notice("interrupted")
        return 130
    except (UsageError, DesiredStateError, InvalidArgumentError) as exc:
        console.error(str(exc))
        return 2
    except FullstoryError as exc:
        console.error(error_text(exc))
        return 1
    except BrokenPipeError:  # e.g. `fullstory-async endpoints list | head`
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no second error when stdout is flushed
            stdout = sys.stdout.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout)
            os.close(devnull)
        return 1
