"""Request bodies of Create and Update Endpoint: decoding and validation.

Field names are accepted in camelCase and snake_case (protojson accepts both); a
``null`` counts as absent; unknown fields are ignored (grpc-gateway's default). Every
problem raises `ApiError` 400 with code ``required_field`` or ``invalid_argument`` and a
message that names the field.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from fullstory_async.testing._catalogue import Catalogue
from fullstory_async.testing._responses import INVALID_ARGUMENT, REQUIRED_FIELD, ApiError
from fullstory_async.testing._store import StoredEventType

_MAX_URL_LENGTH = 2048
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


@attrs.frozen
class EndpointFields:
    """The decoded fields of a create or update body (None: absent or empty)."""

    url: str | None
    event_types: tuple[StoredEventType, ...] | None
    secret: str | None = attrs.field(repr=False)
    disabled: bool | None


def _invalid(message: str) -> ApiError:
    return ApiError.bad_request(INVALID_ARGUMENT, message)


def _object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _invalid("request body must be a JSON object")
    return value


def _field(obj: dict[str, Any], camel: str, snake: str, where: str = "") -> Any:
    value = obj.get(camel)
    other = obj.get(snake) if snake != camel else None
    if value is not None and other is not None:
        raise _invalid(f"{where}{camel} and {where}{snake} are both set")
    return value if value is not None else other


def _string(obj: dict[str, Any], camel: str, snake: str = "", where: str = "") -> str | None:
    value = _field(obj, camel, snake or camel, where)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{where}{camel} must be a string")
    return value


def check_url(url: str) -> None:
    """Raise `ApiError` unless ``url`` is an absolute http(s) URL with a host."""
    if len(url) > _MAX_URL_LENGTH:
        raise _invalid(f"url must be at most {_MAX_URL_LENGTH} characters")
    if _WHITESPACE_OR_CONTROL.search(url):
        raise _invalid("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise _invalid("url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("url must use the http or https scheme")
    if not host:
        raise _invalid("url must include a host")


def _event_types(raw: Any, catalogue: Catalogue) -> tuple[StoredEventType, ...]:
    if not isinstance(raw, list):
        raise _invalid("eventTypes must be a list")
    result: list[StoredEventType] = []
    for index, item in enumerate(raw):
        where = f"eventTypes[{index}]."
        if not isinstance(item, dict):
            raise _invalid(f"eventTypes[{index}] must be an object")
        name = _string(item, "eventName", "event_name", where)
        if not name:
            raise ApiError.bad_request(REQUIRED_FIELD, f"{where}eventName is required")
        definition = catalogue.get(name)
        if definition is None:
            raise _invalid(f"{where}eventName: unknown event type {name!r}")
        subcategory = _string(item, "subcategory", where=where) or ""
        if definition.has_subcategories:
            if not subcategory:
                raise ApiError.bad_request(REQUIRED_FIELD, f"{where}subcategory is required for event type {name!r}")
            if not catalogue.is_valid_subcategory(name, subcategory):
                raise _invalid(f"{where}subcategory is not a valid subcategory of {name!r}")
        elif subcategory:
            raise _invalid(f"{where}subcategory: event type {name!r} has no subcategories")
        result.append(StoredEventType(name, subcategory))
    return tuple(dict.fromkeys(result))


def parse_endpoint_body(body: bytes, catalogue: Catalogue) -> EndpointFields:
    """Decode and validate an update body; empty values come back as None."""
    return parse_endpoint_object(_object(body), catalogue)


def parse_endpoint_object(obj: dict[str, Any], catalogue: Catalogue) -> EndpointFields:
    """Validate a decoded create/update body; empty values come back as None."""
    url = _string(obj, "url") or None
    if url is not None:
        check_url(url)
    raw_event_types = _field(obj, "eventTypes", "event_types")
    event_types = _event_types(raw_event_types, catalogue) if raw_event_types is not None else None
    secret = _string(obj, "secret") or None
    disabled = obj.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise _invalid("disabled must be a boolean")
    return EndpointFields(url=url, event_types=event_types or None, secret=secret, disabled=disabled)


def parse_create_body(body: bytes, catalogue: Catalogue) -> EndpointFields:
    """Decode and validate a create body (see `parse_create_object`)."""
    return parse_create_object(_object(body), catalogue)


def parse_create_object(obj: dict[str, Any], catalogue: Catalogue) -> EndpointFields:
    """Validate a decoded create body: ``url`` is required; event types may be omitted.

    The create page marks every field optional, and the SDK's ``CreateEndpointRequest``
    defaults to no event types: the fake accepts such a create (an endpoint that receives
    nothing until updated) rather than reject what the documentation allows.
    """
    fields = parse_endpoint_object(obj, catalogue)
    if fields.url is None:
        raise ApiError.bad_request(REQUIRED_FIELD, "url is required")
    return fields
