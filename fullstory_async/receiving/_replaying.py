"""The one replay path of ``inbox replay`` and the console: filter text parsed, refusals, then `Inbox.replay`.

Filters arrive as text (command-line flags, a form, a JSON request) and are parsed here once,
so both front ends accept and refuse the same input with the same words. A refusal is an
`InvalidArgumentError` naming the field by its plain name (``since``, ``all``, ``yes``); the
command line shows it as its flag (``--since``). Destructive steps refuse rather than guess:
no filter needs ``all``, more than `CONFIRM_ABOVE` matches need ``yes``, a key prefix must
name one event, ``pending`` is refused (a pending event is in a handler or waiting for its next attempt).
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._inbox import Inbox
from fullstory_async.receiving._query import InboxFilter, ReplayResult

CONFIRM_ABOVE = 10_000
"""Matches above which a replay needs ``yes`` (a mistyped filter should not re-send a month of events)."""

_RELATIVE = re.compile(r"([1-9][0-9]*)([smhd])")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+|)([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_moment(field: str, text: str) -> datetime:
    """Parse a time: RFC 3339 with an offset, or a time ago (``30m``, ``2h``, ``7d``); refuse naming ``field``.

    RFC 3339 exactly (``z`` and a space separator accepted), not `datetime.fromisoformat` alone,
    which also takes ISO 8601 forms beyond it (week dates, ``20261201T000000Z``).
    """
    if match := _RELATIVE.fullmatch(text.strip()):
        try:
            return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
        except (OverflowError, ValueError):  # further back than year 1; past int()'s 4,300 digits
            raise InvalidArgumentError(field, f"{text!r} is further back than any time can be") from None
    value = None
    if match := _RFC3339.fullmatch(text.strip()):
        date, time, fraction, offset = match.groups()
        offset = "+00:00" if offset in "Zz" else offset
        with contextlib.suppress(ValueError):  # a day or an hour out of range
            value = datetime.fromisoformat(f"{date}T{time}{fraction[:7]}{offset}")
    if value is None:
        raise InvalidArgumentError(
            field,
            f"{text!r} is neither an RFC 3339 time with an offset (2026-01-02T03:04:05Z) nor a time ago (30m, 2h, 7d)",
        )
    return value


def parse_key(text: str) -> str:
    """Parse a key: a delivery key or a prefix of at least 8 of its hex digits (case-insensitive)."""
    key = text.strip().lower()
    InboxFilter(key=key)  # refuses naming "key"
    return key


def parse_filter(
    *,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    event_type: str | None = None,
    key: str | None = None,
) -> InboxFilter:
    """Return the `InboxFilter` of text fields; an empty or absent field is no filter; bad input names its field."""
    return InboxFilter(
        status=status or None,  # type: ignore[arg-type]  # the validator refuses anything but a status
        since=parse_moment("since", since) if since else None,
        until=parse_moment("until", until) if until else None,
        event_type=event_type.strip() if event_type and event_type.strip() else None,
        key=parse_key(key) if key else None,
    )


def refuse_unfiltered(filters: InboxFilter, *, all: bool) -> None:
    """Refuse an empty filter unless ``all`` is set (checked before an inbox is even opened)."""
    if filters.empty and not all:
        raise InvalidArgumentError(
            "all", "no filter given: set it to replay every done and dead event (or count them with a dry run)"
        )


async def replay(
    inbox: Inbox, filters: InboxFilter, *, all: bool = False, yes: bool = False, dry_run: bool = False
) -> ReplayResult:
    """Replay what ``filters`` matches after the refusals of ``inbox replay`` (``all``, ``yes``; see the module)."""
    refuse_unfiltered(filters, all=all)
    counted = await inbox.replay(filters, dry_run=True)
    if dry_run:
        return counted
    if counted.matched > CONFIRM_ABOVE and not yes:
        raise InvalidArgumentError(
            "yes", f"{counted.matched:,} events match, more than {CONFIRM_ABOVE:,}: set it to replay them"
        )
    return await inbox.replay(filters)
