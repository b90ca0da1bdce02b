"""`open_inbox`: an inbox URL -> an open `Inbox` engine.

URLs (the SQLAlchemy convention):

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``; add
  ``?synchronous=full`` to survive power loss as well as a crash (default ``normal``).
- ``postgresql://user@host:port/db`` (or ``postgres://``; a socket directory with
  ``postgresql:///db?host=/run/postgresql``), any DSN asyncpg accepts.

A malformed URL (an unknown scheme, a port out of range, an option the engine or the
PostgreSQL server refuses) is an `InvalidArgumentError` on ``url``, its password redacted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._inbox import (
    DEFAULT_COMMIT_TIMEOUT,
    DEFAULT_RETENTION,
    Inbox,
    check_commit_timeout,
    check_retention,
)
from fullstory_async.receiving._postgres import PostgresInbox, redact
from fullstory_async.receiving._sqlite import SqliteInbox

_SYNCHRONOUS = ("normal", "full")


def _sqlite(url: str, **options: Any) -> SqliteInbox:
    parts = urlsplit(url)
    if parts.netloc:
        raise InvalidArgumentError(
            "url", f"a SQLite URL has no host: use sqlite:///relative.db or sqlite:////abs.db, got {redact(url)!r}"
        )
    path = parts.path[1:]
    if not path or path == ":memory:":
        raise InvalidArgumentError(
            "url", f"a SQLite inbox needs a file path (an in-memory inbox is not durable), got {url!r}"
        )
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"synchronous"})
    if unknown:
        raise InvalidArgumentError("url", f"unknown SQLite URL option(s) {', '.join(unknown)} (known: synchronous)")
    synchronous = query.get("synchronous", ["normal"])[-1].lower()
    if synchronous not in _SYNCHRONOUS:
        raise InvalidArgumentError("url", f"synchronous must be normal or full, got {synchronous!r}")
    return SqliteInbox(path, synchronous=synchronous.upper(), **options)


@contextlib.asynccontextmanager
async def open_inbox(
    url: str,
    *,
    retention: float | None = DEFAULT_RETENTION,
    clock: Callable[[], float] | None = None,
    commit_timeout: float = DEFAULT_COMMIT_TIMEOUT,
    create: bool = True,
) -> AsyncIterator[Inbox]:
    """Open (creating or migrating its schema) the inbox at ``url``; close it on exit.

    ::

        async with open_inbox("sqlite:///fullstory-inbox.db") as inbox:
            ...

    Args:
        url: ``sqlite:///path.db`` (``?synchronous=full`` for power-loss durability) or
            ``postgresql://user@host/db`` (needs the ``postgres`` extra).
        retention: seconds a processed event and its dedupe key are kept (7 days);
            ``None`` keeps them forever. Pending and dead events are never purged.
        clock: seconds since the epoch (for tests); by default this machine's clock for
            SQLite and the database's clock (``now()``) for PostgreSQL.
        commit_timeout: seconds any inbox operation may take (opening, a commit, a read, a
            claim) before it fails with `InboxError` (a receiver answers ``503``).
        create: ``False`` for tools that read or repair an existing inbox: a missing file,
            or a database without the inbox tables (or with an older schema), is an
            `InboxError` and nothing is created or migrated.

    Raises:
        InvalidArgumentError: an unsupported or malformed URL.
        InboxError: the database cannot be opened, or has a newer schema than this SDK.

    """
    if not isinstance(url, str):
        raise InvalidArgumentError("url", f"must be an inbox URL string, got {type(url).__name__}")
    options: dict[str, Any] = {
        "retention": check_retention(retention),
        "commit_timeout": check_commit_timeout(commit_timeout),
        "create": bool(create),
    }
    scheme = url.partition(":")[0].lower()
    inbox: SqliteInbox | PostgresInbox
    if scheme == "sqlite":
        inbox = _sqlite(url, clock=clock or time.time, **options)
    elif scheme in ("postgresql", "postgres"):
        inbox = PostgresInbox(url, clock=clock, **options)
    else:
        raise InvalidArgumentError(
            "url",
            f"unsupported inbox URL scheme {scheme!r} in {redact(url)!r}: use sqlite:///path.db or postgresql://...",
        )
    await inbox.open()
    try:
        yield inbox
    finally:
        await inbox.aclose()
