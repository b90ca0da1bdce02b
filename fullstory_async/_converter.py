"""The wire format, and nothing else: models <-> camelCase JSON bytes.

Requests are sent in lowerCamelCase with ``None`` fields left out. Responses are read
in lowerCamelCase or snake_case (the API is protojson-style; its own docs show both),
unknown keys are ignored, and fields that protojson leaves out when they hold their
zero value (``enabled: false``, an empty ``eventTypes``) take that value. Anything that
does not fit raises `ResponseDecodeError` naming the field path, never a raw
``KeyError``/``TypeError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from fullstory_async._decoded_text import check_text
from fullstory_async._exceptions import InvalidArgumentError, ResponseDecodeError
from fullstory_async._models import (
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    Subcategory,
    UpdateEndpointRequest,
)

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")


# Wire-shaped envelopes of list responses; the public API returns `Page` and lists instead.
@attrs.frozen
class EndpointList:
    """``{"endpoints": [...], "nextPaginationToken": "..."}``."""

    endpoints: tuple[Endpoint, ...] = ()
    next_pagination_token: str | None = None


@attrs.frozen
class EventTypeList:
    """``{"eventDefs": [...]}``."""

    event_defs: tuple[EventTypeDefinition, ...] = ()


@attrs.frozen
class SubcategoryList:
    """``{"subcategoryDefs": [...], "nextPaginationToken": "..."}``."""

    subcategory_defs: tuple[Subcategory, ...] = ()
    next_pagination_token: str | None = None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def camel(name: str) -> str:
    """``event_types`` -> ``eventTypes``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _strict(kind: type, name: str) -> Any:
    def hook(value: object, _type: object) -> object:
        # bool is an int subclass: never accept it where a number or string is wanted.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return hook


def parse_timestamp(value: object, _type: object = datetime) -> datetime:
    """Parse an RFC 3339 timestamp (``2020-04-01T21:53:58.200Z``) into an aware UTC datetime."""
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 timestamp string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            # Python keeps microseconds: drop digits past the sixth (protojson may send nanoseconds).
            parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
        except ValueError:
            raise ValueError(f"expected an RFC 3339 timestamp, got {value[:40]!r}") from None
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value[:40]!r}") from None


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds and ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@cache
def get_converter() -> cattrs.Converter:
    """Build the converter on first use (cattrs and its generated code cost import time)."""
    import cattrs

    conv = cattrs.Converter()
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(datetime, parse_timestamp)
    conv.register_unstructure_hook(datetime, format_timestamp)
    response_types: tuple[type[Any], ...] = (
        Endpoint,
        EventType,
        EventTypeDefinition,
        Subcategory,
        EndpointList,
        EventTypeList,
        SubcategoryList,
    )
    for item in (EventType, Endpoint, EventTypeDefinition, Subcategory):
        _register_items(conv, item)
    for cls in response_types:
        _register_response(conv, cls)
    for cls in (EventType, CreateEndpointRequest, UpdateEndpointRequest):  # parts first
        _register_request(conv, cls)
    return conv


# Fields protojson omits when they hold their zero value, with that value.
_ZERO_VALUES: Mapping[type, Mapping[str, object]] = {Endpoint: {"enabled": False}}


def _register_response(conv: cattrs.Converter, cls: type[Any]) -> None:
    from cattrs.gen import make_dict_structure_fn, override

    fields = attrs.fields(cls)
    renames = {f.name: camel(f.name) for f in fields}
    aliases = [(camel_name, snake) for snake, camel_name in renames.items() if camel_name != snake]
    zero = {renames[k]: v for k, v in _ZERO_VALUES.get(cls, {}).items()}
    overrides: dict[str, Any] = {k: override(rename=v) for k, v in renames.items()}
    structure: Any = make_dict_structure_fn(cls, conv, **overrides)

    def respell(data: Mapping[str, Any]) -> dict[str, Any]:
        data = dict(data)
        for camel_name, snake in aliases:
            if camel_name not in data and snake in data:
                data[camel_name] = data[snake]
        for key, value in zero.items():
            data.setdefault(key, value)
        return data

    def hook(data: object, _type: object) -> Any:
        if not isinstance(data, dict):  # what json.loads makes of an object
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        # Copy only when the body needs filling in (the common camelCase body does not).
        for camel_name, snake in aliases:
            if camel_name not in data and snake in data:
                return structure(respell(data), cls)
        for key in zero:
            if key not in data:
                return structure(respell(data), cls)
        return structure(data, cls)

    conv.register_structure_hook(cls, hook)


def _register_items(conv: cattrs.Converter, item: type[Any]) -> None:
    """Structure ``tuple[item, ...]`` from a JSON array, stopping at the first bad item.

    cattrs' own tuple hook builds a detailed error for every bad item (about 80 us each), so a
    hostile page of bad items would stall the event loop for seconds.
    """
    from cattrs.errors import IterableValidationError, IterableValidationNote

    wanted: Any = tuple[item, ...]  # type: ignore[valid-type]

    item_hook: list[Any] = []  # resolved on first use: the item's own hook is registered later

    def hook(data: object, _type: object) -> tuple[Any, ...]:
        if not isinstance(data, list):
            raise TypeError(f"expected a JSON array, got {type(data).__name__}")
        if not item_hook:
            item_hook.append(conv.get_structure_hook(item))
        structure_item = item_hook[0]
        items = []
        for index, value in enumerate(data):
            try:
                items.append(structure_item(value, item))
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"Structuring {wanted!r} @ index {index}", index, item))
                raise IterableValidationError(f"While structuring {wanted!r}", [exc], wanted) from None
        return tuple(items)

    conv.register_structure_hook_func(lambda cls: cls == wanted, hook)


def _register_request(conv: cattrs.Converter, cls: type[Any]) -> None:
    from cattrs.gen import make_dict_unstructure_fn, override

    overrides: dict[str, Any] = {
        f.name: override(rename=camel(f.name), omit_if_default=f.default is None) for f in attrs.fields(cls)
    }
    conv.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, conv, **overrides))


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(payload: object) -> bytes:
    """Encode a request record (or plain JSON data) as compact UTF-8 JSON."""
    data = payload if isinstance(payload, dict) else get_converter().unstructure(payload)
    return _dumps(data).encode()


def encode_update(request: UpdateEndpointRequest, *, enabled: bool) -> bytes:
    """Encode an update; ``disabled`` is always sent, since the API re-enables when it is absent."""
    data = get_converter().unstructure(request)
    data.pop("enabled", None)
    data["disabled"] = not enabled
    return encode(data)


def load_json(body: bytes) -> Any:
    """Parse a JSON body; raise `ResponseDecodeError` for bytes that are not JSON or hold invalid text."""
    try:
        text = body.decode("utf-8")  # decoding first skips json's encoding sniffing
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser allows
        raise ResponseDecodeError(f"body is not valid JSON ({type(exc).__name__})", body=body[:200]) from None
    check_text(body, data)  # no lone surrogate, NUL or other control character in any string
    return data


def structure(data: object, cls: type[T], *, path: str = "$") -> T:
    """Build ``cls`` from parsed JSON; raise `ResponseDecodeError` naming the field that failed."""
    try:
        return get_converter().structure(data, cls)
    except Exception as exc:  # cattrs wraps every hook failure; re-raise as our typed error
        field, reason = _first_error(exc, path)
        raise ResponseDecodeError(reason, field=field) from exc


def decode(body: bytes, cls: type[T]) -> T:
    """Parse and structure a response body into ``cls``."""
    return structure(load_json(body), cls)


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, InvalidArgumentError):
        return exc.problem
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _first_error(exc: Exception, path: str) -> tuple[str, str]:
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, path=path, format_exception=_describe)
        if messages:
            reason, _, where = messages[0].rpartition(" @ ")
            return where or path, reason or messages[0]
    return path, _describe(exc, None)
