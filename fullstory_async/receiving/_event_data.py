"""The ``data`` of each documented event, as frozen records.

Every field of a data record is optional: a key Fullstory leaves out, or sends with an
unexpected type, is ``None`` (or empty), and the value as sent stays in
`WebhookEvent.raw`. Unknown keys are ignored. Timestamps are timezone-aware UTC
datetimes. The wire names (camelCase) belong to ``_envelope`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class PageInfo:
    """The page a note was made on (`NoteCreatedData.page_info`)."""

    page_url: str | None = None
    """URL of the page."""

    ip_address: str | None = None
    """IP address of the visitor."""

    user_agent: str | None = None
    """The visitor's browser user agent."""

    referrer: str | None = None
    """Referring URL."""

    country: str | None = None
    """Country code of the visitor, e.g. ``"US"``."""

    page_height: int | None = None
    """Page height in pixels."""

    page_width: int | None = None
    """Page width in pixels."""


@attrs.frozen
class NoteCreatedData:
    """``note.created``: a Fullstory user made a note on a recorded session."""

    id: str | None = None
    """Id of the note."""

    created: datetime | None = None
    """When the note was created."""

    author: str | None = None
    """Email address of the note's author."""

    text: str | None = None
    """The note's text."""

    session_url: str | None = None
    """Link to the session in Fullstory."""

    user_url: str | None = None
    """Link to the user in Fullstory."""

    share_link: str | None = None
    """Short share link to the noted moment."""

    page_info: PageInfo | None = None
    """The page the note was made on."""

    noted_time: datetime | None = None
    """The moment of the session the note points at."""


@attrs.frozen
class SegmentCreatedData:
    """``segment.created``: a Fullstory user created a segment."""

    id: str | None = None
    """Id of the segment."""

    creator: str | None = None
    """Email address of the segment's creator."""

    name: str | None = None
    """Display name of the segment."""

    url: str | None = None
    """Link to the segment in Fullstory."""

    created: datetime | None = None
    """When the segment was created."""


@attrs.frozen
class SegmentAlertConfig:
    """How a segment threshold alert is configured (`SegmentTrendAlertData.alert_config`)."""

    description: str | None = None
    """The alert's description."""

    threshold: float | None = None
    """The configured threshold."""

    direction: str | None = None
    """``"ABOVE"`` or ``"BELOW"``: which side of the threshold triggers the alert."""

    duration: str | None = None
    """``"DAILY"``, ``"WEEKLY"`` or ``"MONTHLY"``: which active-user count is watched."""

    alert_url: str | None = None
    """Link to the alert in Fullstory."""

    alert_creator: str | None = None
    """Email address of the alert's creator."""

    segment_url: str | None = None
    """Link to the watched segment."""

    segment_creator: str | None = None
    """Email address of the segment's creator."""

    segment_name: str | None = None
    """Display name of the watched segment."""


@attrs.frozen
class SegmentTrendAlertData:
    """``segment.trend.alert``: active users of a saved segment crossed a configured threshold."""

    id: str | None = None
    """Id of the alert notification."""

    timestamp: datetime | None = None
    """When the alert triggered."""

    value: float | None = None
    """The observed value (an ``int`` when Fullstory sends an integer)."""

    notification_url: str | None = None
    """Link to the triggered alert in Fullstory."""

    alert_config: SegmentAlertConfig | None = None
    """The alert's configuration."""


@attrs.frozen
class MetricAlertConfig:
    """How a metric alert is configured (`MetricAlertData.alert_config`)."""

    alert_name: str | None = None
    """Name of the alert."""

    alert_description: str | None = None
    """The alert's description."""

    alert_creator: str | None = None
    """Email address of the alert's creator."""

    alert_url: str | None = None
    """Link to the alert in Fullstory."""

    metric_name: str | None = None
    """Name of the watched metric."""

    metric_description: str | None = None
    """The metric's description."""

    metric_creator: str | None = None
    """Email address of the metric's creator."""

    metric_url: str | None = None
    """Link to the metric in Fullstory."""


@attrs.frozen
class MetricAlertData:
    """``metric.alert``: a metric alert triggered."""

    id: str | None = None
    """Id of the alert notification."""

    alert_id: str | None = None
    """Id of the alert."""

    timestamp: datetime | None = None
    """When the alert triggered."""

    value: float | None = None
    """The metric's value when the alert triggered (an ``int`` when Fullstory sends an integer)."""

    notification_url: str | None = None
    """Link to the triggered alert in Fullstory."""

    alert_config: MetricAlertConfig | None = None
    """The alert's configuration."""


@attrs.frozen
class NativeMobileCrashData:
    """``nativemobile.event.crash``: a native mobile app crashed."""

    app_name: str | None = None
    """Name of the app."""

    app_package_name: str | None = None
    """Package name of the app, e.g. ``"com.example.app"``."""

    app_version: str | None = None
    """Version of the app."""

    device_model: str | None = None
    """Model of the device."""

    os_version: str | None = None
    """Operating system and version."""

    session_url: str | None = None
    """Link to the session in Fullstory."""


@attrs.frozen
class CustomEventIssue:
    """A validation problem Fullstory found in a custom event's property (`CustomEventData.errors`)."""

    err_code: str | None = None
    """What is wrong, e.g. ``"invalidFieldName"``."""

    field: str | None = None
    """The property concerned."""

    value: Any = None
    """The property's value as sent."""


@attrs.frozen
class CustomEventData:
    """``recording.event.custom``: a custom event (``FS.event``) was processed."""

    name: str | None = None
    """Name of the custom event."""

    properties: Mapping[str, Any] = attrs.field(factory=dict)
    """The event's properties as sent; the key's suffix gives the type (``_str``, ``_real``, ``_int``, ``_bool``...)."""

    errors: tuple[CustomEventIssue, ...] = ()
    """Validation problems found in the properties."""

    page_url: str | None = None
    """URL of the page the event happened on."""

    session_url: str | None = None
    """Link to the session in Fullstory."""

    timestamp: datetime | None = None
    """When the event happened."""


@attrs.frozen
class EndpointTestData:
    """``test``: sent by the "Test Endpoint" button of the Fullstory UI."""

    target: str | None = None
    """The URL the test was sent to."""

    initiated_by: str | None = None
    """Email address of the user who pressed the button."""

    message: str | None = None
    """Filler text."""

    pirate_quote: str | None = None
    """More filler text."""
