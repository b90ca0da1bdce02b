"""Stored endpoints and the in-memory store, with O(page) keyset pagination.

Endpoints live in a dict by id (O(1) get, update, delete) and in a list in insertion
order, each carrying a sequence number ``seq``. A page token names the ``seq`` of the
last endpoint returned; the next page starts at a binary search for it, so each page
costs O(log n + page), and deletes never shift a token. A delete leaves a dead entry in
the list (skipped while paging) until dead entries outnumber live ones; the list is then
rebuilt, which is O(1) amortised per delete. An update that keeps the record's place
replaces it in the list at the same position, so an endpoint whose URL (and so id)
changes keeps its place in the listing.
"""

from __future__ import annotations

import base64
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import attrs

_COMPACT_MIN_DEAD = 1024


def endpoint_id(url: str) -> str:
    """Return the id the service gives an endpoint: unpadded base64url of its URL."""
    return base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode("ascii")


def format_timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, e.g. ``"2020-04-01T21:53:58.200Z"``."""
    millis = round(epoch_seconds * 1000)
    seconds, millis = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


@attrs.frozen
class StoredEventType:
    """One configured event type of a stored endpoint."""

    event_name: str
    """The ``eventName``."""

    subcategory: str = ""
    """The opaque subcategory, or ``""`` for event types without subcategories."""

    def to_wire(self) -> dict[str, str]:
        """Return the JSON object of the API (``subcategory`` omitted when empty)."""
        if self.subcategory:
            return {"eventName": self.event_name, "subcategory": self.subcategory}
        return {"eventName": self.event_name}


@attrs.frozen
class StoredEndpoint:
    """An endpoint as the fake stores it, secret included (never in its ``repr``)."""

    id: str
    """The endpoint id (unpadded base64url of ``url``, see `endpoint_id`)."""

    url: str
    """The destination URL."""

    event_types: tuple[StoredEventType, ...]
    """The configured event types."""

    secret: str = attrs.field(repr=False)
    """The signing secret; write-only on the API, kept here to sign deliveries."""

    enabled: bool
    """Whether the endpoint is active."""

    created: str
    """Creation time, RFC 3339 with milliseconds, as the API returns it."""

    modified: str
    """Last modification time, same format."""

    seq: int = attrs.field(repr=False, eq=False)
    """Insertion sequence number: the listing order and the pagination position."""

    def to_wire(self) -> dict[str, Any]:
        """Return the Endpoint JSON object of the API (without the secret)."""
        return {
            "id": self.id,
            "created": self.created,
            "modified": self.modified,
            "enabled": self.enabled,
            "url": self.url,
            "eventTypes": [event_type.to_wire() for event_type in self.event_types],
        }


_seq_of = attrgetter("seq")


class EndpointStore:
    """The endpoints of one fake, by id and in listing order."""

    __slots__ = (
        "_by_id",
        "_dead",
        "_event_types",
        "_last_millis",
        "_last_stamp",
        "_next_seq",
        "_order",
        "_wall_clock",
        "view",
    )

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._by_id: dict[str, StoredEndpoint] = {}
        self._order: list[StoredEndpoint] = []
        self._dead = 0
        self._next_seq = 1
        self._event_types: dict[tuple[StoredEventType, ...], tuple[StoredEventType, ...]] = {}
        self._last_millis = -1
        self._last_stamp = ""
        self.view: Mapping[str, StoredEndpoint] = MappingProxyType(self._by_id)
        """A live read-only mapping id -> `StoredEndpoint`."""

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, id: str) -> StoredEndpoint | None:
        """Return the endpoint with ``id``, or None."""
        return self._by_id.get(id)

    def now(self) -> str:
        """Return the current wall-clock time, formatted (cached per millisecond)."""
        millis = round(self._wall_clock() * 1000)
        if millis != self._last_millis:
            self._last_millis = millis
            self._last_stamp = format_timestamp(millis / 1000)
        return self._last_stamp

    def free_id(self, url: str) -> str:
        """Return an unused id for ``url``: `endpoint_id`, or for a duplicate a variant.

        Duplicates (``duplicate_url="allow"``) get base64url of ``url``, a NUL and a counter,
        which never equals the id of any valid URL (a URL holds no NUL).
        """
        candidate = endpoint_id(url)
        n = 1
        while candidate in self._by_id:
            n += 1
            candidate = endpoint_id(f"{url}\x00{n}")
        return candidate

    def add(
        self,
        url: str,
        event_types: Iterable[StoredEventType],
        secret: str,
        *,
        enabled: bool = True,
        id: str | None = None,
    ) -> StoredEndpoint:
        """Store a new endpoint at the end of the listing; ``id`` must be unused."""
        endpoint_id_ = id if id is not None else endpoint_id(url)
        if endpoint_id_ in self._by_id:
            raise KeyError(f"endpoint id {endpoint_id_!r} already exists")
        stamp = self.now()
        record = StoredEndpoint(
            id=endpoint_id_,
            url=url,
            event_types=self._intern(event_types),
            secret=secret,
            enabled=enabled,
            created=stamp,
            modified=stamp,
            seq=self._next_seq,
        )
        self._next_seq += 1
        self._by_id[endpoint_id_] = record
        self._order.append(record)
        return record

    def replace(
        self,
        old: StoredEndpoint,
        *,
        url: str,
        event_types: Iterable[StoredEventType],
        secret: str,
        enabled: bool,
        id: str,
    ) -> StoredEndpoint:
        """Replace ``old`` (same place in the listing); a new ``id`` must be unused."""
        if self._by_id.get(old.id) is not old:
            raise KeyError(f"endpoint {old.id!r} is not stored")
        if id != old.id and id in self._by_id:
            raise KeyError(f"endpoint id {id!r} already exists")
        record = StoredEndpoint(
            id=id,
            url=url,
            event_types=self._intern(event_types),
            secret=secret,
            enabled=enabled,
            created=old.created,
            modified=self.now(),
            seq=old.seq,
        )
        index = bisect_left(self._order, old.seq, key=_seq_of)
        self._order[index] = record
        if id != old.id:
            del self._by_id[old.id]
        self._by_id[id] = record
        return record

    def delete(self, id: str) -> StoredEndpoint | None:
        """Remove and return the endpoint with ``id`` (None when there is none)."""
        record = self._by_id.pop(id, None)
        if record is not None:
            self._dead += 1
            if self._dead >= _COMPACT_MIN_DEAD and self._dead * 2 > len(self._order):
                by_id = self._by_id
                self._order = [r for r in self._order if by_id.get(r.id) is r]
                self._dead = 0
        return record

    def page(self, after: int, limit: int) -> tuple[list[StoredEndpoint], int | None]:
        """Up to ``limit`` endpoints after sequence number ``after`` (0: from the start).

        Returns the page and, when more endpoints follow, the ``seq`` to continue after.
        """
        order, by_id = self._order, self._by_id
        index = bisect_right(order, after, key=_seq_of) if after else 0
        items: list[StoredEndpoint] = []
        end = len(order)
        while index < end:  # no slicing: that would copy the tail, O(n) per page
            record = order[index]
            index += 1
            if by_id.get(record.id) is record:
                if len(items) == limit:
                    return items, items[-1].seq
                items.append(record)
        return items, None

    def with_url(self, url: str) -> list[StoredEndpoint]:
        """All endpoints whose URL is ``url``, in listing order (a scan: O(n))."""
        return sorted((r for r in self._by_id.values() if r.url == url), key=_seq_of)

    def clear(self) -> None:
        """Remove every endpoint; sequence numbers keep increasing (old tokens stay safe)."""
        self._by_id.clear()
        self._order.clear()
        self._event_types.clear()
        self._dead = 0

    def _intern(self, event_types: Iterable[StoredEventType]) -> tuple[StoredEventType, ...]:
        # Many endpoints share one configuration: keep one tuple per distinct set.
        key = tuple(dict.fromkeys(event_types))
        return self._event_types.setdefault(key, key)
