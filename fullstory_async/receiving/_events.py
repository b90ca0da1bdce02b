"""`WebhookEvent`: a verified delivery, its envelope read and its ``data`` typed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import attrs

from fullstory_async.receiving._event_data import (
    CustomEventData,
    EndpointTestData,
    MetricAlertData,
    NativeMobileCrashData,
    NoteCreatedData,
    SegmentCreatedData,
    SegmentTrendAlertData,
)

EventData: TypeAlias = (
    NoteCreatedData
    | SegmentCreatedData
    | SegmentTrendAlertData
    | MetricAlertData
    | NativeMobileCrashData
    | CustomEventData
    | EndpointTestData
    | Mapping[str, Any]
)
"""What `WebhookEvent.data` holds: a record for a documented event, else the raw ``data`` object."""


@attrs.frozen
class WebhookEvent:
    """A verified delivery: the envelope ``{"eventName", "version", "data"}``, typed.

    ``data`` is the record of a documented event name (``note.created`` gives
    `NoteCreatedData`...) when ``version`` is 1; any other event name or version keeps
    the ``data`` object as a plain mapping, so new event types never break a receiver::

        match event.data:
            case NoteCreatedData(author=author, text=text):
                ...
            case Mapping():  # an event this SDK does not know (yet)
                ...
    """

    event_name: str
    """The event name, e.g. ``"note.created"``."""

    version: int
    """Version of the payload format (1 for every documented event)."""

    data: EventData
    """The event's data: a typed record, or the raw mapping for unknown events and versions."""

    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    """The whole envelope as decoded from JSON, including keys the records do not model."""

    org_id: str | None = None
    """The org that signed the delivery (``o`` of the signature header)."""

    signed_at: datetime | None = None
    """When Fullstory signed the delivery (``t`` of the signature header), if representable."""

    delivery_key: str | None = None
    """The inbox's key for this delivery, when an `InboxWorker` hands it over: stable across
    redeliveries and retries, so an idempotent handler can record what it has done by it."""

    attempt: int | None = None
    """The attempt number of this run when an `InboxWorker` hands the event over (1 for the first
    run of a series), as the inbox counted it."""

    body: bytes = attrs.field(default=b"", repr=False)
    """The raw body exactly as received (what was signed), for re-sending or archiving it."""
