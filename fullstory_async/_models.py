"""The records users send and receive: frozen attrs classes, snake_case, no wire names.

Request records validate their fields when they are built, so bad input fails with an
`InvalidArgumentError` (a ``ValueError``) naming the field before any I/O. The wire
format (camelCase JSON) belongs to ``_converter`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import attrs

from fullstory_async._exceptions import InvalidArgumentError, shown

T = TypeVar("T")


def check_unicode(field: str, value: str) -> None:
    """Raise unless ``value`` encodes as UTF-8 (a lone surrogate does not, so it could never be sent)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(field, "must be valid Unicode text (it holds a lone surrogate)") from None


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(field, "must not be empty")
    if _CONTROL.search(value):
        raise InvalidArgumentError(field, "must not contain control characters")
    check_unicode(field, value)
    return value


def check_url(field: str, value: object) -> str:
    """Return ``value`` if it is an absolute http(s) URL with a host, else raise."""
    url = _check_text(field, value)
    if any(c.isspace() for c in url):
        raise InvalidArgumentError(field, "must not contain whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise InvalidArgumentError(field, f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidArgumentError(field, f"must be an absolute http(s) URL, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidArgumentError(field, "must be an absolute http(s) URL with a host")
    return url


def _validate(check: Any) -> Any:
    """Turn ``check(field, value)`` into an attrs validator that names the field."""

    def validator(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(attribute.name, value)

    return validator


def _optional(check: Any) -> Any:
    def validator(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(attribute.name, value)

    return validator


def _empty_to_none(value: str | None) -> str | None:
    return None if value == "" else value


@attrs.frozen
class EventType:
    """An event type an endpoint receives, optionally narrowed to one subcategory.

    ``EventType("note.created")``; for types that have subcategories
    (``EventTypeDefinition.has_subcategories``) pass the opaque ``subcategory`` value
    returned by ``list_event_subcategories``, never its display name.
    """

    event_name: str = attrs.field(validator=_validate(_check_text))
    """The event name, e.g. ``"note.created"``."""

    subcategory: str | None = attrs.field(default=None, converter=_empty_to_none, validator=_optional(_check_text))
    """Opaque subcategory value, or ``None`` for types without subcategories."""


def _event_types(values: Iterable[EventType | str]) -> tuple[EventType, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgumentError("event_types", f"must be a list of EventType, got {type(values).__name__}")
    result = []
    for index, item in enumerate(values):
        if isinstance(item, str):
            try:
                item = EventType(item)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"event_types[{index}].{exc.field}", exc.problem) from None
        elif not isinstance(item, EventType):
            raise InvalidArgumentError(
                f"event_types[{index}]", f"must be an EventType or an event name, got {type(item).__name__}"
            )
        result.append(item)
    return tuple(result)


def _optional_event_types(values: Iterable[EventType | str] | None) -> tuple[EventType, ...] | None:
    return None if values is None else _event_types(values)


@attrs.frozen
class CreateEndpointRequest:
    """What to create: ``fs.webhooks.create_endpoint(CreateEndpointRequest(...))``.

    ``event_types`` takes `EventType` records or plain event names. The ``secret`` is
    write-only in the API and never shown by ``repr``.
    """

    url: str = attrs.field(validator=_validate(check_url))
    """Absolute http(s) URL that will receive the events; it also identifies the endpoint."""

    event_types: tuple[EventType, ...] = attrs.field(default=(), converter=_event_types)
    """Event types to deliver to the endpoint."""

    secret: str | None = attrs.field(default=None, repr=False, validator=_optional(_check_text))
    """Shared secret Fullstory signs deliveries with (chosen by you; never returned)."""


@attrs.frozen
class UpdateEndpointRequest:
    """What to change on an endpoint; ``None`` leaves a field as it is.

    ``enabled=None`` keeps the endpoint's current enabled state. Changing ``url``
    changes the endpoint's id. A request that changes nothing is rejected.
    """

    url: str | None = attrs.field(default=None, validator=_optional(check_url))
    """New destination URL (the endpoint gets a new id), or ``None`` to keep it."""

    event_types: tuple[EventType, ...] | None = attrs.field(default=None, converter=_optional_event_types)
    """New set of event types (replaces the old set; cannot be empty), or ``None`` to keep it."""

    secret: str | None = attrs.field(default=None, repr=False, validator=_optional(_check_text))
    """New signing secret, or ``None`` to keep it."""

    enabled: bool | None = attrs.field(default=None)
    """``True`` enables, ``False`` disables, ``None`` keeps the current state."""

    def __attrs_post_init__(self) -> None:
        if self.event_types == ():
            raise InvalidArgumentError(
                "event_types", "cannot be empty (the API cannot clear event types); use None to keep them"
            )
        if self.enabled is not None and not isinstance(self.enabled, bool):
            raise InvalidArgumentError("enabled", f"must be True, False or None, got {shown(self.enabled)}")
        if self.url is None and self.event_types is None and self.secret is None and self.enabled is None:
            raise InvalidArgumentError("UpdateEndpointRequest", "changes nothing: set at least one field")


@attrs.frozen
class Endpoint:
    """A webhook endpoint as the API returns it (the secret is never returned)."""

    id: str
    """Unique id; derived from the URL, so it changes when the URL changes."""

    created: datetime
    """When the endpoint was created (timezone-aware, UTC)."""

    modified: datetime
    """When the endpoint was last modified (timezone-aware, UTC)."""

    enabled: bool
    """Whether the endpoint receives events."""

    url: str
    """Destination URL."""

    event_types: tuple[EventType, ...] = ()
    """Event types delivered to the endpoint."""


@attrs.frozen
class EventTypeDefinition:
    """An event type the organisation can subscribe to (``list_event_types``)."""

    event_name: str
    """The name used in `EventType` and in delivered payloads."""

    display_name: str = ""
    """Human-readable name."""

    has_subcategories: bool = False
    """If true, an `EventType` of this name needs a ``subcategory``."""


@attrs.frozen
class Subcategory:
    """A subcategory of an event type (``list_event_subcategories``)."""

    subcategory: str
    """Opaque value to put in `EventType.subcategory`."""

    display_name: str = ""
    """Human-readable name (falls back to ``subcategory`` when the API sends none)."""


@attrs.frozen
class Page(Generic[T]):
    """One page of a paginated listing, for callers who page by hand or resume later."""

    items: tuple[T, ...]
    """The records on this page (possibly none)."""

    next_page_token: str | None = None
    """Pass as ``page_token`` to get the next page; ``None`` on the last page."""
