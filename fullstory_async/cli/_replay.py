"""``fullstory-async inbox replay``: make the done and dead events a filter matches pending again.

Each matching event starts a new series of attempts (attempts reset, due now; its history is
kept), so a running ``forward`` or `InboxWorker` handles it again. Destructive steps refuse
rather than guess: no filter needs ``--all``, more than `CONFIRM_ABOVE` matches need ``--yes``,
a key prefix must name one event, and ``--status pending`` is refused (pending events are left
alone: due, in a handler, or waiting out a retry's delay). ``--dry-run`` counts and changes
nothing. ``inbox requeue --dead`` is ``inbox replay --status dead --all``. Like every ``inbox``
command it never creates nor migrates an inbox.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli._local import INBOX_URL_HELP as URL_HELP
from fullstory_async.cli._local import local
from fullstory_async.receiving import InboxFilter, ReplayResult, _replaying, open_inbox
from fullstory_async.receiving._query import MIN_KEY_PREFIX
from fullstory_async.receiving._replaying import CONFIRM_ABOVE


def _argument(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Make a parser of `_replaying` an argparse type (its refusal becomes argparse's usage error)."""

    def argument(text: str) -> object:
        try:
            return parse(text)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None

    return argument


_moment = _argument(functools.partial(_replaying.parse_moment, "time"))


def replay_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox replay``."""
    action.description = (
        "Make the done and dead events a filter matches pending again, due now, with a new series of attempts "
        "(their history is kept). Prints 'replayed N of M matched'."
    )
    action.add_argument("--inbox", required=True, metavar="URL", help=URL_HELP)
    action.add_argument("--status", choices=("done", "dead"), help="only events in this state")
    action.add_argument("--since", type=_moment, metavar="TIME", help="received at or after (RFC 3339 or 30m, 2h, 7d)")
    action.add_argument("--until", type=_moment, metavar="TIME", help="received before (RFC 3339 or 30m, 2h, 7d)")
    action.add_argument("--event-type", metavar="NAME", help="only events of this eventName")
    action.add_argument(
        "--key",
        type=_argument(_replaying.parse_key),
        metavar="KEY",
        help=f"one event: its key or a unique prefix (>= {MIN_KEY_PREFIX})",
    )
    action.add_argument("--all", action="store_true", help="needed when no filter is given: every done and dead event")
    action.add_argument("--yes", action="store_true", help=f"needed to replay more than {CONFIRM_ABOVE:,} events")
    action.add_argument("--dry-run", action="store_true", help="count the matches, change nothing")
    action.add_argument("--json", action="store_true", help='print {"matched": M, "replayed": N}')


def requeue_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox requeue`` (an alias of ``inbox replay --status dead --all``)."""
    action.add_argument("--inbox", required=True, metavar="URL", help=URL_HELP)
    action.add_argument("--dead", action="store_true", required=True, help="every dead event")
    action.add_argument("--yes", action="store_true", help=f"needed to requeue more than {CONFIRM_ABOVE:,} events")
    action.add_argument("--json", action="store_true", help='print {"matched": M, "replayed": N}')


def _flag(exc: InvalidArgumentError) -> InvalidArgumentError:
    """Name the flag of a refused field (``since`` -> ``--since``)."""
    return InvalidArgumentError(f"--{exc.field.replace('_', '-')}", exc.problem)


async def _replay(args: argparse.Namespace) -> int:
    try:
        if args.event_type is not None and not args.event_type:
            raise InvalidArgumentError("event_type", "must not be empty")
        filters = InboxFilter(args.status, args.since, args.until, args.event_type, args.key)
        _replaying.refuse_unfiltered(filters, all=args.all)
        async with open_inbox(args.inbox, retention=None, create=False) as inbox:
            result = await _replaying.replay(inbox, filters, all=args.all, yes=args.yes, dry_run=args.dry_run)
    except InvalidArgumentError as exc:
        raise _flag(exc) from None
    _print(result, args)
    return 0


def _print(result: ReplayResult, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"matched": result.matched, "replayed": result.replayed, "dry_run": result.dry_run}))
    elif result.dry_run:
        print(f"would replay {result.replayed} of {result.matched} matched (dry run: nothing changed)")
    else:
        print(f"replayed {result.replayed} of {result.matched} matched")


async def _requeue(args: argparse.Namespace) -> int:
    args.status, args.since, args.until, args.event_type, args.key = "dead", None, None, None, None
    args.all, args.dry_run = True, False
    return await _replay(args)


inbox_replay = local(_replay)
"""``fullstory-async inbox replay``."""
inbox_requeue = local(_requeue)
"""``fullstory-async inbox requeue --dead`` (``inbox replay --status dead --all``)."""
