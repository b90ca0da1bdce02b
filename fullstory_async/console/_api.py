"""The console's JSON API under ``/api/`` (the page's data, and a script's): what each answer holds.

Every answer is a JSON object; a refusal is ``{"error": "..."}`` naming the field at fault.
Times are RFC 3339 UTC. Lists are keyset-paged (`Inbox.list`): no exact total is counted.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving import Inbox, InboxAttempt, InboxFilter, InboxRecord, ReplayResult
from fullstory_async.receiving._activity import InboxActivity
from fullstory_async.receiving._inbox import rfc3339
from fullstory_async.receiving._replaying import parse_filter, replay

PAGE = 50
"""Deliveries a page shows unless ``limit`` says otherwise."""

MAX_LIMIT = 500
"""The largest ``limit``."""

FILTER_FIELDS = ("status", "event_type", "since", "until", "key")
"""The filter fields of the list and of a replay (as in ``inbox replay``)."""

NO_DELIVERY = "key: no delivery is stored under this key"
"""The refusal (``404``) of a key no delivery is stored under, on a page and in the API."""

_REPLAY_FLAGS = ("all", "yes", "dry_run")
_STATUS = re.compile(r"([1-5][0-9][0-9])\b")

INBOX: web.AppKey[Inbox] = web.AppKey("inbox", Inbox)


def list_query(query: Mapping[str, str]) -> tuple[InboxFilter, str | None, int]:
    """Return the filter, cursor and limit of a list request's query; bad input names its field."""
    filters = parse_filter(**{name: query.get(name) for name in FILTER_FIELDS})
    text = query.get("limit") or str(PAGE)
    if not re.fullmatch("[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_LIMIT:  # not isdigit(): "²" is a digit
        raise InvalidArgumentError("limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return filters, query.get("cursor") or None, int(text)


def delivery(record: InboxRecord) -> dict[str, Any]:
    """Return a delivery as the API shows it in lists (no body)."""
    return {
        "key": record.key,
        "status": record.status,
        "event_type": record.event_type,
        "received_at": rfc3339(record.received_at),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "org_id": record.org_id,
    }


def attempt(run: InboxAttempt) -> dict[str, Any]:
    """Return one run of an event's history: its detail as ``error``; as ``status`` the HTTP status it starts with."""
    status = _STATUS.match(run.detail or "")
    return {
        "at": rfc3339(run.started_at),
        "attempt": run.attempt,
        "outcome": run.outcome,
        "status": int(status[1]) if status else None,
        "error": run.detail,
        "duration_ms": round(run.duration * 1000, 3),
    }


def activity(figures: InboxActivity) -> dict[str, Any]:
    """Return `Inbox.activity` as the API shows it."""
    return {
        "minutes": [
            {
                "minute": rfc3339(minute.minute),
                "pending": minute.pending,
                "done": minute.done,
                "dead": minute.dead,
                "oldest_pending_age_seconds": None
                if minute.oldest_pending_age is None
                else round(minute.oldest_pending_age, 3),
            }
            for minute in figures.minutes
        ],
        "counted_since": rfc3339(figures.counted_since),
    }


def replay_fields(fields: Any) -> tuple[InboxFilter, dict[str, bool]]:
    """Return the filter and the ``all``/``yes``/``dry_run`` flags of a replay request; bad input names its field."""
    if not isinstance(fields, dict):
        raise InvalidArgumentError("body", "must be a JSON object")
    for name, value in fields.items():
        if name in _REPLAY_FLAGS:
            if not isinstance(value, bool):
                raise InvalidArgumentError(name, f"must be true or false, got {value!r}")
        elif name not in FILTER_FIELDS:
            raise InvalidArgumentError(name, f"is not a replay field ({', '.join((*FILTER_FIELDS, *_REPLAY_FLAGS))})")
        elif value is not None and not isinstance(value, str):
            raise InvalidArgumentError(name, f"must be a string, got {value!r}")
    filters = parse_filter(**{name: fields.get(name) for name in FILTER_FIELDS})
    return filters, {name: bool(fields.get(name, False)) for name in _REPLAY_FLAGS}


def replayed(result: ReplayResult) -> dict[str, Any]:
    """Return what a replay did."""
    return {"matched": result.matched, "replayed": result.replayed, "dry_run": result.dry_run}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def list_deliveries(request: web.Request) -> web.Response:
    """``GET /api/deliveries``: one page, newest first, and the cursor of the next."""
    filters, cursor, limit = list_query(request.query)
    page = await request.app[INBOX].list(filters, cursor, limit)
    return _json({"deliveries": [delivery(record) for record in page.records], "next_cursor": page.next_cursor})


async def get_delivery(request: web.Request) -> web.Response:
    """``GET /api/deliveries/{key}``: one delivery with its body and history."""
    entry = await request.app[INBOX].get(request.match_info["key"])
    if entry is None:
        return _json({"error": NO_DELIVERY}, 404)
    try:
        body, encoding = entry.record.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(entry.record.body).decode("ascii"), "base64"
    shown = {**delivery(entry.record), "body": body, "body_encoding": encoding}
    return _json({"delivery": shown, "history": [attempt(run) for run in entry.history]})


async def stats(request: web.Request) -> web.Response:
    """``GET /api/stats``: the ``inbox stats --json`` object."""
    return _json((await request.app[INBOX].stats()).to_json())


async def get_activity(request: web.Request) -> web.Response:
    """``GET /api/activity``: the last day a minute at a time."""
    return _json(activity(await request.app[INBOX].activity()))


async def post_replay(request: web.Request) -> web.Response:
    """``POST /api/replay``: the one replay path of ``inbox replay``, with its filters and refusals."""
    try:
        fields = await request.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser's depth
        raise InvalidArgumentError("body", "must be a JSON object") from None
    filters, flags = replay_fields(fields)
    return _json(replayed(await replay(request.app[INBOX], filters, **flags)))
