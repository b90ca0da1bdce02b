"""The ``data`` of each documented event, shaped like the samples on Fullstory's event pages.

For tests of a receiver: ``signed_delivery(name, sample_event_data(name), ...)`` builds a
delivery, ``FakeFullstory.deliver(name, endpoint_id=...)`` sends one. Each call returns a
fresh copy, so a test may change it.
"""

from __future__ import annotations

import copy
from typing import Any

_SESSION = "https://app.fullstory.com/ui/o-1A2B3C-na1/session/4842385213857792%3A6442450944"
_SAMPLES: dict[str, dict[str, Any]] = {
    "note.created": {
        "id": "5ef1b0b0-9b0a-4b8a-8f5e-5c6c1a2b3c4d",
        "created": "2024-03-18T14:03:11.123Z",
        "author": "ada@example.com",
        "text": "Checkout button does nothing on Safari",
        "sessionUrl": _SESSION,
        "userUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/user/4842385213857792",
        "shareLink": "https://fsty.io/v/AbCdEf",
        "pageInfo": {
            "pageUrl": "https://shop.example.com/checkout",
            "ipAddress": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 Safari/605.1.15",
            "referrer": "https://shop.example.com/cart",
            "country": "US",
            "pageHeight": 2210,
            "pageWidth": 1440,
        },
        "notedTime": "2024-03-18T13:58:42.000Z",
    },
    "segment.created": {
        "id": "hs7s6AbCdE",
        "creator": "ada@example.com",
        "name": "Rage clicks on checkout",
        "url": "https://app.fullstory.com/ui/o-1A2B3C-na1/segments/hs7s6AbCdE",
        "created": "2024-03-18T14:03:11.123Z",
    },
    "segment.trend.alert": {
        "id": "8f0c2a9e-segment-alert",
        "timestamp": "2024-03-18T15:00:00.000Z",
        "value": 1250,
        "notificationUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/alerts/notifications/8f0c2a9e",
        "alertConfig": {
            "description": "Daily active users on checkout fell below 1,500",
            "threshold": 1500,
            "direction": "BELOW",
            "duration": "DAILY",
            "alertUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/alerts/segment/77",
            "alertCreator": "ada@example.com",
            "segmentUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/segments/hs7s6AbCdE",
            "segmentCreator": "grace@example.com",
            "segmentName": "Checkout visitors",
        },
    },
    "metric.alert": {
        "id": "3d2b7c1a-metric-alert",
        "alertId": "42",
        "timestamp": "2024-03-18T15:00:00.000Z",
        "value": 0.083,
        "notificationUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/alerts/notifications/3d2b7c1a",
        "alertConfig": {
            "alertName": "Checkout error rate",
            "alertDescription": "Error clicks per checkout session above 5%",
            "alertCreator": "ada@example.com",
            "alertUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/alerts/metric/42",
            "metricName": "Checkout error clicks",
            "metricDescription": "Error clicks on /checkout",
            "metricCreator": "grace@example.com",
            "metricUrl": "https://app.fullstory.com/ui/o-1A2B3C-na1/metrics/9",
        },
    },
    "nativemobile.event.crash": {
        "appName": "Example Shop",
        "appPackageName": "com.example.shop",
        "appVersion": "5.2.1",
        "deviceModel": "iPhone15,2",
        "osVersion": "17.3.1",
        "sessionUrl": _SESSION,
    },
    "recording.event.custom": {
        "name": "Order Completed",
        "properties": {"orderId_str": "A-1001", "total_real": 59.9, "items_int": 3, "firstOrder_bool": True},
        "errors": [{"errCode": "invalid_type", "field": "coupon", "value": "12"}],
        "pageUrl": "https://shop.example.com/checkout/done",
        "sessionUrl": _SESSION,
        "timestamp": "2024-03-18T14:03:11.123Z",
    },
    "test": {
        "target": "https://hooks.example.com/fullstory/webhooks",
        "initiatedBy": "ada@example.com",
        "message": "This is a test event from Fullstory",
        "pirateQuote": "Dead men tell no tales.",
    },
}

SAMPLE_EVENT_NAMES = tuple(_SAMPLES)
"""Every documented event name, in the order of the reference."""


def sample_event_data(event_name: str) -> dict[str, Any]:
    """Return a fresh copy of the sample ``data`` of a documented event (``ValueError`` for another name)."""
    try:
        return copy.deepcopy(_SAMPLES[event_name])
    except KeyError:
        known = ", ".join(SAMPLE_EVENT_NAMES)
        raise ValueError(f"no sample for event {event_name!r} (documented: {known})") from None
