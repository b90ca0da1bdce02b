"""Typed events: each documented example parses into its record; unknown events and versions stay generic."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fullstory_async.receiving import (
    CustomEventData,
    CustomEventIssue,
    EndpointTestData,
    MetricAlertConfig,
    MetricAlertData,
    NativeMobileCrashData,
    NoteCreatedData,
    PageInfo,
    SegmentAlertConfig,
    SegmentCreatedData,
    SegmentTrendAlertData,
    SignatureVerificationError,
    VerificationFailure,
    WebhookEvent,
    sign,
    verify,
)

SECRET = "wh-secret-9Qx7LmPz"
ORG_ID = "o-1A2B3C-na1"
NOW = 1_700_000_000

# The example payloads of the Fullstory event pages (reference §6.2): same shapes, our own values.
EXAMPLES: dict[str, dict[str, Any]] = {
    "note.created": {
        "id": "5kd93hf83jd0",
        "created": "2021-03-02T10:11:12.345Z",
        "author": "ada@example.com",
        "text": 'This user hits the "stuck spinner" bug.',
        "sessionUrl": "https://app.fullstory.com/ui/ORG1/session/111:222!333",
        "userUrl": "https://app.fullstory.com/ui/ORG1/segments/everyone/people/0/user/111",
        "shareLink": "https://fsty.io/v/aBcDeF",
        "pageInfo": {
            "pageUrl": "https://shop.example.com/cart",
            "ipAddress": "192.0.2.10",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            "referrer": "https://shop.example.com/",
            "country": "FR",
            "pageHeight": 900,
            "pageWidth": 1440,
        },
        "notedTime": "2021-03-01T09:00:00.5Z",
    },
    "segment.created": {
        "id": "seg123abc",
        "creator": "grace@example.com",
        "name": "Checkout abandoners",
        "url": "https://app.fullstory.com/ui/ORG1/segments/seg123abc",
        "created": "2022-06-07T08:09:10.111Z",
    },
    "segment.trend.alert": {
        "id": "b6f0a1c2d3e4f5a6b7c8d9e0",
        "timestamp": "2022-05-01T12:00:00.000Z",
        "value": 87,
        "notificationUrl": "https://app.fullstory.com/ui/ORG1/segments/seg9/alerts/42/notifications/7",
        "alertConfig": {
            "description": "too few completed checkouts",
            "threshold": 100,
            "direction": "BELOW",
            "duration": "WEEKLY",
            "alertUrl": "https://app.fullstory.com/ui/ORG1/segments/seg9/alerts/42",
            "alertCreator": "grace@example.com",
            "segmentUrl": "https://app.fullstory.com/ui/ORG1/segments/seg9",
            "segmentCreator": "ada@example.com",
            "segmentName": "Completed checkout",
        },
    },
    "metric.alert": {
        "id": "c7a1b2c3d4e5f6a7b8c9d0e1",
        "alertId": "alrt9Zq",
        "timestamp": "2024-04-01T10:00:00.0Z",
        "value": 12.5,
        "notificationUrl": "https://app.fullstory.com/ui/ORG1/metrics/details/m1/alerts/alrt9Zq?triggerId=t1",
        "alertConfig": {
            "alertName": "Error rate alert",
            "alertDescription": "More than 10 errors per minute",
            "alertCreator": "ada@example.com",
            "alertUrl": "https://app.fullstory.com/ui/ORG1/metrics/details/m1/alerts/alrt9Zq",
            "metricName": "Errors per minute",
            "metricDescription": "Uncaught errors per minute.",
            "metricCreator": "grace@example.com",
            "metricUrl": "https://app.fullstory.com/ui/ORG1/metrics/details/m1",
        },
    },
    "nativemobile.event.crash": {
        "appName": "ShopApp",
        "appPackageName": "com.example.shop",
        "appVersion": "v4.2",
        "deviceModel": "Pixel 7",
        "osVersion": "Android 14",
        "sessionUrl": "https://app.fullstory.com/ui/ORG1/session/444:555!666",
    },
    "recording.event.custom": {
        "name": "Order Completed",
        "properties": {"order_id_str": "A-1001", "total_real": 99.5, "items_int": 3, "gift_bool": False},
        "errors": [{"errCode": "invalidFieldName", "field": "9lives", "value": "x"}],
        "pageUrl": "https://shop.example.com/thanks",
        "sessionUrl": "https://app.fullstory.com/ui/ORG1/session/777:888!999",
        "timestamp": "2020-02-03T04:05:06.789Z",
    },
    "test": {
        "target": "https://hooks.example.com/fullstory",
        "initiatedBy": "ada@example.com",
        "message": "Testing, testing.",
        "pirateQuote": "Ahoy!",
    },
}

EXPECTED: dict[str, object] = {
    "note.created": NoteCreatedData(
        id="5kd93hf83jd0",
        created=datetime(2021, 3, 2, 10, 11, 12, 345000, tzinfo=UTC),
        author="ada@example.com",
        text='This user hits the "stuck spinner" bug.',
        session_url="https://app.fullstory.com/ui/ORG1/session/111:222!333",
        user_url="https://app.fullstory.com/ui/ORG1/segments/everyone/people/0/user/111",
        share_link="https://fsty.io/v/aBcDeF",
        page_info=PageInfo(
            page_url="https://shop.example.com/cart",
            ip_address="192.0.2.10",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            referrer="https://shop.example.com/",
            country="FR",
            page_height=900,
            page_width=1440,
        ),
        noted_time=datetime(2021, 3, 1, 9, 0, 0, 500000, tzinfo=UTC),
    ),
    "segment.created": SegmentCreatedData(
        id="seg123abc",
        creator="grace@example.com",
        name="Checkout abandoners",
        url="https://app.fullstory.com/ui/ORG1/segments/seg123abc",
        created=datetime(2022, 6, 7, 8, 9, 10, 111000, tzinfo=UTC),
    ),
    "segment.trend.alert": SegmentTrendAlertData(
        id="b6f0a1c2d3e4f5a6b7c8d9e0",
        timestamp=datetime(2022, 5, 1, 12, tzinfo=UTC),
        value=87,
        notification_url="https://app.fullstory.com/ui/ORG1/segments/seg9/alerts/42/notifications/7",
        alert_config=SegmentAlertConfig(
            description="too few completed checkouts",
            threshold=100,
            direction="BELOW",
            duration="WEEKLY",
            alert_url="https://app.fullstory.com/ui/ORG1/segments/seg9/alerts/42",
            alert_creator="grace@example.com",
            segment_url="https://app.fullstory.com/ui/ORG1/segments/seg9",
            segment_creator="ada@example.com",
            segment_name="Completed checkout",
        ),
    ),
    "metric.alert": MetricAlertData(
        id="c7a1b2c3d4e5f6a7b8c9d0e1",
        alert_id="alrt9Zq",
        timestamp=datetime(2024, 4, 1, 10, tzinfo=UTC),
        value=12.5,
        notification_url="https://app.fullstory.com/ui/ORG1/metrics/details/m1/alerts/alrt9Zq?triggerId=t1",
        alert_config=MetricAlertConfig(
            alert_name="Error rate alert",
            alert_description="More than 10 errors per minute",
            alert_creator="ada@example.com",
            alert_url="https://app.fullstory.com/ui/ORG1/metrics/details/m1/alerts/alrt9Zq",
            metric_name="Errors per minute",
            metric_description="Uncaught errors per minute.",
            metric_creator="grace@example.com",
            metric_url="https://app.fullstory.com/ui/ORG1/metrics/details/m1",
        ),
    ),
    "nativemobile.event.crash": NativeMobileCrashData(
        app_name="ShopApp",
        app_package_name="com.example.shop",
        app_version="v4.2",
        device_model="Pixel 7",
        os_version="Android 14",
        session_url="https://app.fullstory.com/ui/ORG1/session/444:555!666",
    ),
    "recording.event.custom": CustomEventData(
        name="Order Completed",
        properties={"order_id_str": "A-1001", "total_real": 99.5, "items_int": 3, "gift_bool": False},
        errors=(CustomEventIssue(err_code="invalidFieldName", field="9lives", value="x"),),
        page_url="https://shop.example.com/thanks",
        session_url="https://app.fullstory.com/ui/ORG1/session/777:888!999",
        timestamp=datetime(2020, 2, 3, 4, 5, 6, 789000, tzinfo=UTC),
    ),
    "test": EndpointTestData(
        target="https://hooks.example.com/fullstory",
        initiated_by="ada@example.com",
        message="Testing, testing.",
        pirate_quote="Ahoy!",
    ),
}


def receive(document: object, *, raw: bytes | None = None) -> WebhookEvent:
    """Sign a document (or raw bytes) and verify it, as a receiver would."""
    body = raw if raw is not None else json.dumps(document).encode()
    return verify(body, sign(body, SECRET, ORG_ID, NOW), SECRET, now=NOW)


def envelope(event_name: str, data: object, version: object = 1) -> dict[str, object]:
    """Build the delivery envelope."""
    return {"eventName": event_name, "version": version, "data": data}


@pytest.mark.parametrize("event_name", sorted(EXAMPLES))
def test_documented_example_parses_into_its_record(event_name: str) -> None:
    """Every documented event's example data becomes its typed record, field by field."""
    event = receive(envelope(event_name, EXAMPLES[event_name]))
    assert event.event_name == event_name
    assert event.version == 1
    assert event.data == EXPECTED[event_name]
    assert event.raw == envelope(event_name, EXAMPLES[event_name])


def test_every_documented_event_has_an_example() -> None:
    """The examples cover the seven documented event names."""
    assert set(EXAMPLES) == {
        "note.created",
        "segment.created",
        "segment.trend.alert",
        "metric.alert",
        "nativemobile.event.crash",
        "recording.event.custom",
        "test",
    }


def test_timestamps_are_aware_utc_datetimes() -> None:
    """RFC 3339 strings with an offset become aware datetimes in UTC."""
    event = receive(envelope("segment.created", {"created": "2022-06-07T10:09:10+02:00"}))
    assert isinstance(event.data, SegmentCreatedData)
    assert event.data.created == datetime(2022, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert event.data.created is not None
    assert event.data.created.utcoffset() is not None


@pytest.mark.parametrize("event_name", sorted(EXAMPLES))
def test_missing_optional_fields_are_none(event_name: str) -> None:
    """An empty data object still gives the record, with every field empty."""
    event = receive(envelope(event_name, {}))
    assert type(event.data) is type(EXPECTED[event_name])
    assert all(value in (None, (), {}) for value in attrs.asdict(event.data, recurse=False).values())


def test_unknown_keys_are_ignored_but_kept_in_raw() -> None:
    """Keys the record does not model are ignored, and stay readable in raw."""
    data = {**EXAMPLES["test"], "newField": {"nested": True}}
    event = receive({**envelope("test", data), "deliveryAttempt": 2})
    assert event.data == EXPECTED["test"]
    assert event.raw["data"]["newField"] == {"nested": True}
    assert event.raw["deliveryAttempt"] == 2


def test_snake_case_keys_are_read_too() -> None:
    """A snake_case key (the docs' prose says notification_url) is read when the camelCase one is absent."""
    event = receive(envelope("metric.alert", {"notification_url": "https://x.example/n", "alert_id": "a1"}))
    assert isinstance(event.data, MetricAlertData)
    assert (event.data.notification_url, event.data.alert_id) == ("https://x.example/n", "a1")


def test_values_of_unexpected_types_become_none() -> None:
    """A field of the wrong type is None (its value stays in raw) instead of breaking the delivery."""
    data = {
        "id": 123,
        "created": "yesterday",
        "author": None,
        "text": ["not", "text"],
        "pageInfo": "not an object",
        "notedTime": 1700000000,
    }
    event = receive(envelope("note.created", data))
    assert event.data == NoteCreatedData()
    assert event.raw["data"]["created"] == "yesterday"


def test_numbers_keep_their_kind_and_booleans_are_not_numbers() -> None:
    """Integers stay int, floats stay float, true/false is not a number, integral floats fit int fields."""
    alert = receive(envelope("segment.trend.alert", {"value": 3, "alertConfig": {"threshold": 2.5}})).data
    assert isinstance(alert, SegmentTrendAlertData)
    assert alert.alert_config is not None
    assert (type(alert.value), alert.alert_config.threshold) == (int, 2.5)
    assert receive(envelope("metric.alert", {"value": True})).data == MetricAlertData()
    note = receive(envelope("note.created", {"pageInfo": {"pageHeight": 900.0, "pageWidth": 1.5}})).data
    assert isinstance(note, NoteCreatedData)
    assert note.page_info == PageInfo(page_height=900)


def test_custom_event_tolerates_odd_properties_and_errors() -> None:
    """Non-object properties give {}, non-list errors give (), and non-object error entries are skipped."""
    assert receive(envelope("recording.event.custom", {"properties": [1], "errors": {}})).data == CustomEventData()
    data = receive(envelope("recording.event.custom", {"errors": ["oops", {"errCode": "x", "value": [1]}]})).data
    assert isinstance(data, CustomEventData)
    assert data.errors == (CustomEventIssue(err_code="x", value=[1]),)


def test_far_timestamps_that_overflow_become_none() -> None:
    """A timestamp whose offset pushes it out of datetime's range is None, not an error."""
    event = receive(envelope("segment.created", {"created": "0001-01-01T00:00:00+01:00"}))
    assert event.data == SegmentCreatedData()


def test_unknown_event_parses_generically() -> None:
    """An event name this SDK does not know keeps its data as a plain mapping."""
    event = receive(envelope("session.summarized", {"sessionId": "s1", "score": 0.9}))
    assert event.event_name == "session.summarized"
    assert isinstance(event.data, Mapping)
    assert event.data == {"sessionId": "s1", "score": 0.9}


def test_other_versions_of_known_events_parse_generically() -> None:
    """A known event name with a version other than 1 is not forced into the version-1 record."""
    event = receive(envelope("note.created", {"noteId": "n1"}, version=2))
    assert event.version == 2
    assert event.data == {"noteId": "n1"}


def test_pattern_matching_on_data() -> None:
    """Users can match on the record types and fall back to Mapping for unknown events."""

    def describe(event: WebhookEvent) -> str:
        match event.data:
            case NoteCreatedData(author=author):
                return f"note by {author}"
            case Mapping():
                return f"unknown {event.event_name}"
            case _:
                return "other"

    assert describe(receive(envelope("note.created", EXAMPLES["note.created"]))) == "note by ada@example.com"
    assert describe(receive(envelope("brand.new", {}))) == "unknown brand.new"
    assert describe(receive(envelope("test", {}))) == "other"


def test_event_repr_leaves_out_the_raw_envelope() -> None:
    """The repr shows the typed data but not the (possibly large) raw document."""
    event = receive(envelope("test", EXAMPLES["test"]))
    assert "raw=" not in repr(event)
    assert "EndpointTestData(target='https://hooks.example.com/fullstory'" in repr(event)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b"not json", "not valid JSON", id="not-json"),
        pytest.param(b"\xff\xfe\x00garbage", "not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "JSON list", id="array"),
        pytest.param(b'"text"', "JSON str", id="string"),
        pytest.param(b"[" * 100_000, "not valid JSON", id="deep-nesting"),
        pytest.param(json.dumps({"version": 1, "data": {}}).encode(), "eventName", id="no-event-name"),
        pytest.param(json.dumps(envelope("", {})).encode(), "eventName", id="empty-event-name"),
        pytest.param(json.dumps(envelope(5, {})).encode(), "eventName", id="numeric-event-name"),
        pytest.param(json.dumps({"eventName": "test", "data": {}}).encode(), "version", id="no-version"),
        pytest.param(json.dumps(envelope("test", {}, "1")).encode(), "version", id="string-version"),
        pytest.param(json.dumps(envelope("test", {}, True)).encode(), "version", id="boolean-version"),
        pytest.param(json.dumps({"eventName": "test", "version": 1}).encode(), "data", id="no-data"),
        pytest.param(json.dumps(envelope("test", [1])).encode(), "data", id="list-data"),
        pytest.param(json.dumps(envelope("test", None)).encode(), "data", id="null-data"),
    ],
)
def test_signed_body_that_is_not_an_envelope_is_malformed_body(body: bytes, detail: str) -> None:
    """A verified body that is not {"eventName", "version", "data"} raises malformed_body naming the problem."""
    with pytest.raises(SignatureVerificationError) as info:
        receive(None, raw=body)
    assert info.value.reason is VerificationFailure.MALFORMED_BODY
    assert detail in info.value.detail


def test_body_is_parsed_only_after_the_signature_verifies() -> None:
    """A malformed body with a bad signature is a mismatch: nothing is parsed before verification."""
    with pytest.raises(SignatureVerificationError) as info:
        verify(b"not json", sign(b"other", SECRET, ORG_ID, NOW), SECRET, now=NOW)
    assert info.value.reason is VerificationFailure.MISMATCH


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=25,
)
field_names = st.sampled_from(
    sorted({key for example in EXAMPLES.values() for key in example} | {"alertConfig", "pageInfo", "errors"})
)


@settings(max_examples=300, deadline=None)
@given(
    event_name=st.sampled_from(sorted(EXAMPLES)),
    data=st.dictionaries(field_names | st.text(max_size=10), json_values, max_size=8),
)
def test_documented_events_with_arbitrary_data_always_parse(event_name: str, data: dict[str, Any]) -> None:
    """Whatever JSON values the data holds, a documented event parses into its record without raising."""
    event = receive(envelope(event_name, data))
    assert type(event.data) is type(EXPECTED[event_name])
