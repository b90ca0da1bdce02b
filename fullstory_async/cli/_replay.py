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
import contextlib
import json
import re
from datetime import UTC, datetime, timedelta

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli._local import INBOX_URL_HELP as URL_HELP
from fullstory_async.cli._local import local
from fullstory_async.receiving import InboxFilter, ReplayResult, open_inbox
from fullstory_async.receiving._query import MIN_KEY_PREFIX

CONFIRM_ABOVE = 10_000
"""Matches above which a replay needs ``--yes`` (a mistyped filter should not re-send a month of events)."""

_RELATIVE = re.compile(r"([1-9][0-9]*)([smhd])")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+|)([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def moment(text: str) -> datetime:
    """Parse ``--since``/``--until``: RFC 3339 with an offset, or a time ago (``30m``, ``2h``, ``7d``)."""
    if match := _RELATIVE.fullmatch(text.strip()):
        try:
            return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
        except OverflowError:  # further back than year 1
            raise argparse.ArgumentTypeError(f"{text!r} is further back than any time can be") from None
    value = None
    if match := _RFC3339.fullmatch(text.strip()):  # not fromisoformat alone: it takes ISO 8601 forms beyond RFC 3339
        date, fraction, offset = match.groups()
        offset = "+00:00" if offset in "Zz" else offset
        with contextlib.suppress(ValueError):  # a day or hour out of range
            value = datetime.fromisoformat(f"{date[:10]}T{date[11:]}{fraction[:7]}{offset}")
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an RFC 3339 time with an offset (2026-01-02T03:04:05Z) nor a time ago (30m, 2h, 7d)"
        )
    return value


def key_prefix(text: str) -> str:
    """Parse ``--key``: a delivery key or a prefix of at least `MIN_KEY_PREFIX` hex digits (case-insensitive)."""
    key = text.strip().lower()
    try:
        InboxFilter(key=key)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return key


def replay_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox replay``."""
    action.description = (
        "Make the done and dead events a filter matches pending again, due now, with a new series of attempts "
        "(their history is kept). Prints 'replayed N of M matched'."
    )
    action.add_argument("--inbox", required=True, metavar="URL", help=URL_HELP)
    action.add_argument("--status", choices=("done", "dead"), help="only events in this state")
    action.add_argument("--since", type=moment, metavar="TIME", help="received at or after (RFC 3339 or 30m, 2h, 7d)")
    action.add_argument("--until", type=moment, metavar="TIME", help="received before (RFC 3339 or 30m, 2h, 7d)")
    action.add_argument("--event-type", metavar="NAME", help="only events of this eventName")
    action.add_argument(
        "--key", type=key_prefix, metavar="KEY", help=f"one event: its key or a unique prefix (>= {MIN_KEY_PREFIX})"
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


def _filter(args: argparse.Namespace) -> InboxFilter:
    if args.event_type is not None and not args.event_type:
        raise InvalidArgumentError("--event-type", "must not be empty")
    filters = InboxFilter(args.status, args.since, args.until, args.event_type, args.key)
    if filters.empty and not args.all:
        raise InvalidArgumentError(
            "--all", "no filter given: add --all to replay every done and dead event (or --dry-run to count them)"
        )
    return filters


async def _replay(args: argparse.Namespace) -> int:
    filters = _filter(args)
    async with open_inbox(args.inbox, retention=None, create=False) as inbox:
        try:
            counted = await inbox.replay(filters, dry_run=True)
            if args.dry_run:
                result = counted
            elif counted.matched > CONFIRM_ABOVE and not args.yes:
                raise InvalidArgumentError(
                    "--yes", f"{counted.matched:,} events match, more than {CONFIRM_ABOVE:,}: add --yes to replay them"
                )
            else:
                result = await inbox.replay(filters)
        except InvalidArgumentError as exc:  # a prefix naming several events: name the flag
            raise InvalidArgumentError(f"--{exc.field.replace('_', '-')}", exc.problem) from None
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
