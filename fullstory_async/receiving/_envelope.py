"""The delivery wire format: verified body bytes -> `WebhookEvent`.

The envelope is strict: a JSON object with a non-empty string ``eventName``, an
integer ``version`` and an object ``data``; anything else is
`VerificationFailure.MALFORMED_BODY`. The data is lenient, so a payload that drifts
from the documentation still arrives: keys are read in camelCase or snake_case, a
missing key or a value of an unexpected type becomes ``None`` (or empty), unknown keys
are ignored, and an unparsable timestamp becomes ``None``. The value as sent is always
in `WebhookEvent.raw`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from fullstory_async._converter import camel, parse_timestamp
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._event_data import (
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
)
from fullstory_async.receiving._events import EventData, WebhookEvent

DATA_TYPES: Mapping[str, type[Any]] = {
    "note.created": NoteCreatedData,
    "segment.created": SegmentCreatedData,
    "segment.trend.alert": SegmentTrendAlertData,
    "metric.alert": MetricAlertData,
    "nativemobile.event.crash": NativeMobileCrashData,
    "recording.event.custom": CustomEventData,
    "test": EndpointTestData,
}
"""The documented event names (version 1) and the record their ``data`` becomes."""


def _string(value: object, _type: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object, _type: object) -> float | None:
    # bool is an int subclass: never read true/false as 1/0.
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: object, _type: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(value: object, _type: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a far offset at year 1 or 9999
        return None


def _properties(value: object, _type: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(str, _string)
    conv.register_structure_hook(float, _number)
    conv.register_structure_hook(int, _integer)
    conv.register_structure_hook(datetime, _timestamp)
    for cls in (PageInfo, SegmentAlertConfig, MetricAlertConfig, CustomEventIssue):  # parts first
        _register(conv, cls)

    def issues(value: object, _type: object) -> tuple[CustomEventIssue, ...]:
        if not isinstance(value, list):
            return ()
        return tuple(conv.structure(item, CustomEventIssue) for item in value if isinstance(item, Mapping))

    _register(conv, CustomEventData, properties=_properties, errors=issues)
    for cls in DATA_TYPES.values():
        if cls is not CustomEventData:
            _register(conv, cls)
    return conv


def _register(conv: cattrs.Converter, cls: type[Any], **hooks: Callable[[object, object], object]) -> None:
    """Structure ``cls`` from camelCase (or snake_case) keys; anything but an object gives ``None``."""
    fields = attrs.fields(cls)
    renames = {f.name: camel(f.name) for f in fields}
    aliases = [(camel_name, snake) for snake, camel_name in renames.items() if camel_name != snake]
    overrides: dict[str, Any] = {
        name: override(rename=camel_name, struct_hook=hooks.get(name)) for name, camel_name in renames.items()
    }
    structure: Any = make_dict_structure_fn(cls, conv, **overrides)

    def hook(data: object, _type: object) -> Any:
        if not isinstance(data, Mapping):
            return None
        if aliases:
            data = dict(data)
            for camel_name, snake in aliases:
                if camel_name not in data and snake in data:
                    data[camel_name] = data[snake]
        return structure(data, cls)

    conv.register_structure_hook(cls, hook)


converter = _make_converter()


def _malformed(detail: str) -> SignatureVerificationError:
    return SignatureVerificationError(VerificationFailure.MALFORMED_BODY, detail)


def read_envelope(body: bytes) -> tuple[dict[str, Any], str, int, dict[str, Any]]:
    """Check the envelope: the document, its event name, version and data; `SignatureVerificationError` if none."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"body is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise _malformed(f"body is a JSON {type(document).__name__}, not an object")
    event_name = document.get("eventName")
    if not isinstance(event_name, str) or not event_name:
        raise _malformed("eventName is missing or not a non-empty string")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _malformed("version is missing or not an integer")
    raw_data = document.get("data")
    if not isinstance(raw_data, dict):
        raise _malformed("data is missing or not an object")
    return document, event_name, version, raw_data


def parse_event(
    body: bytes,
    *,
    org_id: str | None = None,
    signed_at: datetime | None = None,
    delivery_key: str | None = None,
    attempt: int | None = None,
) -> WebhookEvent:
    """Decode a verified body into a `WebhookEvent`; raise `SignatureVerificationError` if it is no envelope."""
    document, event_name, version, raw_data = read_envelope(body)
    cls = DATA_TYPES.get(event_name) if version == 1 else None
    data: EventData = raw_data if cls is None else converter.structure(raw_data, cls)
    return WebhookEvent(
        event_name,
        version,
        data,
        raw=document,
        org_id=org_id,
        signed_at=signed_at,
        delivery_key=delivery_key,
        attempt=attempt,
        body=body,
    )
