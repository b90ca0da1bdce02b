"""The wire format: camelCase request JSON, tolerant and strict response decoding, RFC 3339 times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fullstory_async import (
    APIError,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    ResponseDecodeError,
    Subcategory,
    UpdateEndpointRequest,
)
from fullstory_async._converter import camel, decode, encode, encode_update, format_timestamp, parse_timestamp

SUBCATEGORY = (
    "CgsiCW8tSDkxLW5hMRIOCgRTZWF0GgZzeXN0ZW0SEwoHU2VnbWVudBoIZXZlcnlvbmUSEQoI"
    "U2VhcmNoaWUaBTQ5MTY4EhAKBUFsZXJ0EICAgICAqJkL"
)
SEED_TIME = datetime(2020, 4, 1, 21, 53, 58, 200_000, tzinfo=UTC)
SEED_ENDPOINT = Endpoint(
    id="aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M",
    created=SEED_TIME,
    modified=SEED_TIME,
    enabled=True,
    url="https://example.com/fullstory-webhooks",
    event_types=(EventType("recording.event.custom", SUBCATEGORY),),
)


def endpoint_json(**changes: object) -> dict[str, object]:
    """Return the seed page's example response as a dict, with ``changes`` applied (``None`` deletes a key)."""
    data: dict[str, object] = {
        "id": "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M",
        "created": "2020-04-01T21:53:58.200Z",
        "modified": "2020-04-01T21:53:58.200Z",
        "enabled": True,
        "url": "https://example.com/fullstory-webhooks",
        "eventTypes": [{"eventName": "recording.event.custom", "subcategory": SUBCATEGORY}],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def as_bytes(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("event_types", "eventTypes"), ("id", "id"), ("has_subcategories", "hasSubcategories"), ("url", "url")],
)
def test_camel(name: str, expected: str) -> None:
    """snake_case field names become lowerCamelCase wire names."""
    assert camel(name) == expected


def test_encode_create_request_matches_the_seed_page_body() -> None:
    """A full create request encodes to exactly the JSON of the seed page's curl example."""
    request = CreateEndpointRequest(
        url="https://example.com/fullstory-webhooks",
        event_types=[EventType("recording.event.custom", SUBCATEGORY)],
        secret="w7ixQjN7QEiWRwXUFfXneA",
    )
    assert json.loads(encode(request)) == {
        "url": "https://example.com/fullstory-webhooks",
        "secret": "w7ixQjN7QEiWRwXUFfXneA",
        "eventTypes": [{"eventName": "recording.event.custom", "subcategory": SUBCATEGORY}],
    }


def test_encode_omits_none_fields() -> None:
    """None fields (secret, subcategory) are left out of the body, not sent as null."""
    body = encode(CreateEndpointRequest(url="https://example.com/hook", event_types=["note.created"]))
    assert body == b'{"url":"https://example.com/hook","eventTypes":[{"eventName":"note.created"}]}'
    assert b"null" not in body


def test_encode_is_compact_utf8() -> None:
    """The body is compact JSON in UTF-8, non-ASCII characters kept as they are."""
    body = encode(CreateEndpointRequest(url="https://example.com/h\u00fcck"))
    assert body == '{"url":"https://example.com/h\u00fcck","eventTypes":[]}'.encode()


@pytest.mark.parametrize(("enabled", "disabled"), [(True, False), (False, True)])
def test_encode_update_always_sends_disabled(enabled: bool, disabled: bool) -> None:
    """An update always carries the inverse `disabled` flag and never `enabled`."""
    body = json.loads(encode_update(UpdateEndpointRequest(secret="s3cr3t"), enabled=enabled))
    assert body == {"secret": "s3cr3t", "disabled": disabled}


def test_encode_update_camel_cases_and_omits_none() -> None:
    """An update with url and event types sends camelCase keys and leaves out the unchanged fields."""
    request = UpdateEndpointRequest(url="https://example.com/new", event_types=["note.created"], enabled=True)
    assert json.loads(encode_update(request, enabled=True)) == {
        "url": "https://example.com/new",
        "eventTypes": [{"eventName": "note.created"}],
        "disabled": False,
    }


def test_decode_seed_example_response() -> None:
    """The seed page's example response decodes to the expected Endpoint."""
    assert decode(as_bytes(endpoint_json()), Endpoint) == SEED_ENDPOINT


def test_decoded_times_are_aware_utc_with_milliseconds() -> None:
    """created/modified are timezone-aware UTC datetimes keeping the milliseconds."""
    endpoint = decode(as_bytes(endpoint_json(modified="2021-12-31T23:59:59.999Z")), Endpoint)
    assert endpoint.created.tzinfo is not None
    assert endpoint.created.utcoffset() == timedelta(0)
    assert endpoint.created.microsecond == 200_000
    assert endpoint.modified == datetime(2021, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)


def test_decode_snake_case_spelling() -> None:
    """The snake_case spellings (event_types, event_name) decode the same as camelCase."""
    data = endpoint_json(
        eventTypes=None, event_types=[{"event_name": "recording.event.custom", "subcategory": SUBCATEGORY}]
    )
    assert decode(as_bytes(data), Endpoint) == SEED_ENDPOINT


def test_decode_ignores_unknown_keys() -> None:
    """Unknown keys at any level are ignored."""
    data = endpoint_json(
        description="new in v2",
        eventTypes=[{"eventName": "recording.event.custom", "subcategory": SUBCATEGORY, "extra": {"a": 1}}],
    )
    assert decode(as_bytes(data), Endpoint) == SEED_ENDPOINT


def test_decode_missing_enabled_is_false() -> None:
    """Protojson omits false booleans: a missing `enabled` means False."""
    assert decode(as_bytes(endpoint_json(enabled=None)), Endpoint).enabled is False


def test_decode_missing_event_types_is_empty() -> None:
    """Protojson omits empty lists: missing `eventTypes` means no event types."""
    assert decode(as_bytes(endpoint_json(eventTypes=None)), Endpoint).event_types == ()


def test_decode_empty_subcategory_is_none() -> None:
    """An empty subcategory string decodes as None."""
    data = endpoint_json(eventTypes=[{"eventName": "note.created", "subcategory": ""}])
    assert decode(as_bytes(data), Endpoint).event_types == (EventType("note.created"),)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"id": 17}, "$.id", "expected a string, got int"),
        ({"id": True}, "$.id", "expected a string, got bool"),
        ({"enabled": "true"}, "$.enabled", "expected a boolean, got str"),
        ({"enabled": 1}, "$.enabled", "expected a boolean, got int"),
        ({"created": "yesterday"}, "$.created", "RFC 3339"),
        ({"created": 1585777438}, "$.created", "RFC 3339"),
        ({"url": ["https://example.com"]}, "$.url", "expected a string, got list"),
        ({"eventTypes": ["note.created"]}, "$.event_types[0]", "expected a JSON object, got str"),
        (
            {"eventTypes": [{"eventName": "a.b"}, {"eventName": 5}]},
            "$.event_types[1].event_name",
            "expected a string, got int",
        ),
        ({"eventTypes": [{"subcategory": "x"}]}, "$.event_types[0].event_name", "required field missing"),
        ({"eventTypes": [{"eventName": "a.b", "subcategory": 5}]}, "$.event_types[0].subcategory", "got int"),
    ],
)
def test_decode_wrong_types_name_the_field(changes: dict[str, object], field: str, reason: str) -> None:
    """A field of the wrong type raises ResponseDecodeError naming its path and the reason."""
    with pytest.raises(ResponseDecodeError) as info:
        decode(as_bytes(endpoint_json(**changes)), Endpoint)
    assert info.value.field == field
    assert reason in info.value.reason
    assert f"at {field}: " in str(info.value)


@pytest.mark.parametrize("missing", ["id", "created", "modified", "url"])
def test_decode_missing_required_field_is_named(missing: str) -> None:
    """A missing required field raises ResponseDecodeError naming it."""
    data = endpoint_json()
    del data[missing]
    with pytest.raises(ResponseDecodeError) as info:
        decode(as_bytes(data), Endpoint)
    assert info.value.field == f"$.{missing}"
    assert info.value.reason == "required field missing"


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe\x00", b"<html>502</html>"])
def test_decode_invalid_json(body: bytes) -> None:
    """A body that is not JSON raises ResponseDecodeError at `$`, never a raw JSONDecodeError."""
    with pytest.raises(ResponseDecodeError) as info:
        decode(body, Endpoint)
    assert info.value.field == "$"
    assert "not valid JSON" in info.value.reason
    assert isinstance(info.value, APIError)


@pytest.mark.parametrize(("body", "kind"), [(b"[]", "list"), (b"null", "NoneType"), (b'"x"', "str"), (b"3", "int")])
def test_decode_non_object(body: bytes, kind: str) -> None:
    """A JSON value that is not an object raises ResponseDecodeError at `$` naming what it got."""
    with pytest.raises(ResponseDecodeError) as info:
        decode(body, Endpoint)
    assert info.value.field == "$"
    assert info.value.reason == f"expected a JSON object, got {kind}"


def test_decode_event_type_definition_both_spellings() -> None:
    """Event type definitions decode from camelCase and snake_case alike."""
    expected = EventTypeDefinition("segment.trend.alert", "Segment Alert", True)
    camel_body = b'{"eventName": "segment.trend.alert", "displayName": "Segment Alert", "hasSubcategories": true}'
    snake_body = b'{"event_name": "segment.trend.alert", "display_name": "Segment Alert", "has_subcategories": true}'
    assert decode(camel_body, EventTypeDefinition) == expected
    assert decode(snake_body, EventTypeDefinition) == expected


def test_decode_subcategory_mixed_spelling() -> None:
    """A subcategory decodes from the docs' mixed `display_name` spelling too."""
    assert decode(b'{"subcategory": "Cg", "display_name": "Added Item"}', Subcategory) == Subcategory(
        "Cg", "Added Item"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-04-01T21:53:58.200Z", datetime(2020, 4, 1, 21, 53, 58, 200_000, tzinfo=UTC)),
        ("2020-04-01T21:53:58Z", datetime(2020, 4, 1, 21, 53, 58, tzinfo=UTC)),
        ("2020-04-01T21:53:58.123456789Z", datetime(2020, 4, 1, 21, 53, 58, 123_456, tzinfo=UTC)),
        ("2020-04-01T23:53:58.200+02:00", datetime(2020, 4, 1, 21, 53, 58, 200_000, tzinfo=UTC)),
        ("2020-04-01T21:53:58.200", datetime(2020, 4, 1, 21, 53, 58, 200_000, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    """RFC 3339 times (ms, none, ns, offsets, no zone) parse to aware UTC datetimes."""
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_format_timestamp_uses_milliseconds_and_z() -> None:
    """Times are written as UTC with milliseconds and Z."""
    when = datetime(2020, 4, 1, 23, 53, 58, 200_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(when) == "2020-04-01T21:53:58.200Z"


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)))
def test_timestamp_round_trip(when: datetime) -> None:
    """format_timestamp then parse_timestamp keeps every aware time to the millisecond."""
    expected = when.replace(microsecond=when.microsecond // 1000 * 1000)
    assert parse_timestamp(format_timestamp(when)) == expected


_text = st.text(max_size=8)
_wire_event_type = st.fixed_dictionaries(
    {"eventName": st.one_of(_text, st.integers())},
    optional={"subcategory": st.one_of(st.none(), _text), "extra": _text},
)
_wire_endpoint = st.fixed_dictionaries(
    {
        "id": st.one_of(_text, st.none()),
        "url": _text,
        "created": st.one_of(st.just("2020-04-01T21:53:58.200Z"), _text),
        "modified": st.sampled_from(["2020-04-01T21:53:58.200Z", "2021-01-01T00:00:00+02:00", "nope"]),
    },
    optional={
        "enabled": st.one_of(st.booleans(), st.integers(0, 1)),
        "eventTypes": st.one_of(st.lists(_wire_event_type, max_size=3), _text),
        "event_types": st.lists(st.fixed_dictionaries({"event_name": _text}), max_size=2),
        "unknown": _text,
    },
)


@given(_wire_endpoint)
def test_any_wire_endpoint_decodes_or_raises_a_typed_error(data: dict[str, object]) -> None:
    """Every body shape decodes to an Endpoint or raises ResponseDecodeError, never a raw KeyError/TypeError."""
    import json

    from fullstory_async._converter import decode

    try:
        endpoint = decode(json.dumps(data).encode(), Endpoint)
    except ResponseDecodeError:
        return
    assert endpoint.url == data["url"]


@given(
    st.builds(
        CreateEndpointRequest,
        url=st.sampled_from(["https://example.com/a", "http://h:8080/p?q=1"]),
        event_types=st.lists(
            st.builds(EventType, st.sampled_from(["note.created", "é.x"]), st.one_of(st.none(), st.just("Sub"))),
            max_size=3,
        ),
        secret=st.one_of(st.none(), st.just("s3cr3t-ü")),
    )
)
def test_create_encoding_is_the_camel_case_wire_form(request: CreateEndpointRequest) -> None:
    """A create body is camelCase, leaves None out and keeps non-ASCII text as UTF-8."""
    import json

    from fullstory_async._converter import encode

    expected: dict[str, object] = {
        "url": request.url,
        "eventTypes": [
            {"eventName": t.event_name} | ({} if t.subcategory is None else {"subcategory": t.subcategory})
            for t in request.event_types
        ],
    }
    if request.secret is not None:
        expected["secret"] = request.secret
    assert json.loads(encode(request).decode("utf-8")) == expected
