"""The catalogue of event types and subcategories the fake server offers.

The default catalogue seeds the event names of the reference (§4.1, §4.3). Subcategory
values are opaque strings, like the real ones (which are base64 protobuf bytes): clients
must copy them from ``List Event Subcategories`` and never build them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator

import attrs


def opaque_subcategory(event_name: str, display_name: str) -> str:
    """Return a deterministic opaque subcategory value (standard base64, 32 characters)."""
    digest = hashlib.sha256(f"{event_name}\x00{display_name}".encode()).digest()
    return base64.b64encode(digest[:24]).decode("ascii")


@attrs.frozen
class SubcategoryDef:
    """One subcategory of an event type (e.g. one custom event or one alert)."""

    subcategory: str
    """The opaque value a client puts into ``eventTypes[].subcategory``."""

    display_name: str = ""
    """Human-readable name; may be empty, like on the real service."""

    @classmethod
    def named(cls, event_name: str, display_name: str) -> SubcategoryDef:
        """Build a subcategory whose opaque value is derived from its names."""
        return cls(opaque_subcategory(event_name, display_name), display_name)


def _as_subcategories(value: Iterable[SubcategoryDef]) -> tuple[SubcategoryDef, ...]:
    return tuple(value)


def _default_has_subcategories(self: EventTypeDef) -> bool:
    return bool(self.subcategories)


@attrs.frozen
class EventTypeDef:
    """One event type of the catalogue (an item of ``eventDefs``)."""

    event_name: str
    """The ``eventName``, e.g. ``"note.created"``."""

    display_name: str = ""
    """The ``displayName`` shown in the UI."""

    subcategories: tuple[SubcategoryDef, ...] = attrs.field(default=(), converter=_as_subcategories)
    """The valid subcategories, in listing order."""

    has_subcategories: bool = attrs.field(default=attrs.Factory(_default_has_subcategories, takes_self=True))
    """Whether endpoints must name a subcategory; defaults to ``bool(subcategories)``."""


class Catalogue:
    """An immutable set of `EventTypeDef`, looked up by event name.

    ::

        Catalogue([EventTypeDef("order.paid", "Order Paid")])
    """

    __slots__ = ("_by_name", "_subcategories")

    def __init__(self, event_types: Iterable[EventTypeDef]) -> None:
        self._by_name: dict[str, EventTypeDef] = {}
        for definition in event_types:
            if not definition.event_name:
                raise ValueError("event_name must not be empty")
            if definition.event_name in self._by_name:
                raise ValueError(f"duplicate event type {definition.event_name!r}")
            self._by_name[definition.event_name] = definition
        self._subcategories: dict[str, frozenset[str]] = {
            name: frozenset(s.subcategory for s in d.subcategories) for name, d in self._by_name.items()
        }

    @classmethod
    def default(cls) -> Catalogue:
        """Return the seeded catalogue (see `default_event_types`)."""
        return cls(default_event_types())

    def __iter__(self) -> Iterator[EventTypeDef]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, event_name: object) -> bool:
        return event_name in self._by_name

    def __repr__(self) -> str:
        return f"Catalogue({list(self._by_name)!r})"

    def get(self, event_name: str) -> EventTypeDef | None:
        """Return the definition of ``event_name``, or None when it is unknown."""
        return self._by_name.get(event_name)

    def is_valid_subcategory(self, event_name: str, subcategory: str) -> bool:
        """Whether ``subcategory`` is one of the values listed for ``event_name``."""
        return subcategory in self._subcategories.get(event_name, frozenset())


DOCS_SUBCATEGORY = (
    "CgsiCW8tSDkxLW5hMRIOCgRTZWF0GgZzeXN0ZW0SEwoHU2VnbWVudBoIZXZlcnlvbmUSEQoIU2VhcmNoaWUa"
    "BTQ5MTY4EhAKBUFsZXJ0EICAgICAqJkL"
)
"""The ``recording.event.custom`` subcategory of the API reference's own examples (the create page's cURL)."""


def _subcategories(event_name: str, *display_names: str) -> list[SubcategoryDef]:
    return [SubcategoryDef.named(event_name, name) for name in display_names]


def default_event_types() -> tuple[EventTypeDef, ...]:
    """Return the seeded event types: the reference's names, with a few subcategories each.

    ``recording.event.custom`` includes one subcategory with an empty display name,
    since the real service may return those, and `DOCS_SUBCATEGORY`, so the reference's
    examples run as written.
    """
    return (
        EventTypeDef("note.created", "Note Created"),
        EventTypeDef("segment.created", "Segment Created"),
        EventTypeDef(
            "segment.trend.alert",
            "Segment Alert",
            _subcategories("segment.trend.alert", "Checkout errors above 5%", "Sign-ups below 100 per day"),
        ),
        EventTypeDef(
            "metric.alert",
            "Metric Alert",
            _subcategories("metric.alert", "Conversion rate dropped", "Rage clicks spiked"),
        ),
        EventTypeDef("nativemobile.event.crash", "Native Mobile Crash"),
        EventTypeDef(
            "recording.event.custom",
            "Custom Event",
            [
                *_subcategories("recording.event.custom", "Added Item to Cart", "Checkout Completed", "Signed Up"),
                SubcategoryDef(DOCS_SUBCATEGORY, "Docs example"),
                SubcategoryDef.named("recording.event.custom", ""),
            ],
        ),
    )
