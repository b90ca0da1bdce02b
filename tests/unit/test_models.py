"""The request and response records: validation before any I/O, names of failing fields, repr."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fullstory_async import (
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    FullstoryError,
    InvalidArgumentError,
    Subcategory,
    UpdateEndpointRequest,
)
from fullstory_async._models import check_url

SECRET = "w7ixQjN7QEiWRwXUFfXneA"


def test_event_type_keeps_name_and_subcategory() -> None:
    """An EventType holds its name and its opaque subcategory."""
    event_type = EventType("recording.event.custom", "CgsiCW8t")
    assert (event_type.event_name, event_type.subcategory) == ("recording.event.custom", "CgsiCW8t")
    assert EventType("note.created").subcategory is None


def test_event_type_empty_subcategory_means_none() -> None:
    """An empty subcategory is the same as none (the API sends "" for types without one)."""
    assert EventType("note.created", "") == EventType("note.created")


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_event_type_rejects_empty_name(name: str) -> None:
    """An empty or blank event_name is rejected with an error naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        EventType(name)
    assert info.value.field == "event_name"
    assert "empty" in str(info.value)


@pytest.mark.parametrize("name", [None, 5, b"note.created", ["note.created"]])
def test_event_type_rejects_non_string_name(name: object) -> None:
    """A non-string event_name is rejected, naming the field and the type received."""
    with pytest.raises(InvalidArgumentError, match=r"^event_name: must be a string, got \w+"):
        EventType(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("subcategory", [5, 0, ["CgsiCW8t"], b"CgsiCW8t", "  ", "Cg\n"])
def test_event_type_rejects_bad_subcategory(subcategory: object) -> None:
    """A subcategory that is not a non-blank string (0 and [] included) is rejected, not sent or dropped."""
    with pytest.raises(InvalidArgumentError) as info:
        EventType("recording.event.custom", subcategory)  # type: ignore[arg-type]
    assert info.value.field == "subcategory"


def test_event_type_rejects_control_characters() -> None:
    """Control characters in an event_name are rejected."""
    with pytest.raises(InvalidArgumentError, match="control characters"):
        EventType("note.created\n")


def test_invalid_argument_error_is_a_value_error_and_a_fullstory_error() -> None:
    """Bad input raises a ValueError that is also a FullstoryError."""
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the type itself is under test
        EventType("")
    assert isinstance(info.value, FullstoryError)


def test_create_request_accepts_names_and_event_types() -> None:
    """event_types takes EventType records and plain event names, stored as a tuple of EventType."""
    request = CreateEndpointRequest(
        url="https://example.com/fullstory-webhooks",
        event_types=["note.created", EventType("recording.event.custom", "CgsiCW8t")],
        secret=SECRET,
    )
    assert request.event_types == (EventType("note.created"), EventType("recording.event.custom", "CgsiCW8t"))
    assert request.url == "https://example.com/fullstory-webhooks"
    assert request.secret == SECRET


def test_create_request_defaults() -> None:
    """event_types defaults to empty and secret to None."""
    request = CreateEndpointRequest(url="https://example.com/hook")
    assert request.event_types == ()
    assert request.secret is None


def test_create_request_accepts_a_generator_of_event_types() -> None:
    """Any iterable of event types is accepted, not only lists."""
    request = CreateEndpointRequest(url="https://example.com/hook", event_types=(n for n in ["a.b", "c.d"]))
    assert request.event_types == (EventType("a.b"), EventType("c.d"))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://example.com/hook",
        "HTTPS://EXAMPLE.com",
        "https://example.com:8443/a/b?x=1",
        "https://127.0.0.1/hook",
        "https://[::1]:9000/hook",
    ],
)
def test_create_request_accepts_absolute_http_urls(url: str) -> None:
    """Absolute http(s) URLs with a host pass validation unchanged."""
    assert CreateEndpointRequest(url=url).url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/fullstory-webhooks", "scheme"),
        ("example.com/hook", "scheme"),
        ("ftp://example.com/hook", "scheme 'ftp'"),
        ("mailto:ops@example.com", "scheme 'mailto'"),
        ("https://", "host"),
        ("https:///path/only", "host"),
        ("https://exa mple.com/hook", "whitespace"),
        (" https://example.com/hook", "whitespace"),
        ("https://example.com/hook ", "whitespace"),
        ("https://example.com/\x00", "control characters"),
        ("https://example.com:99999/hook", "not a valid URL"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_create_request_rejects_bad_urls(url: str, reason: str) -> None:
    """Relative, non-http(s), host-less, whitespace-carrying or empty URLs are rejected naming url."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url=url)
    assert info.value.field == "url"
    assert reason in info.value.problem
    assert str(info.value).startswith("url: ")


@pytest.mark.parametrize("url", [None, 42, b"https://example.com/hook"])
def test_create_request_rejects_non_string_url(url: object) -> None:
    """A URL that is not a str is rejected naming url and the type."""
    with pytest.raises(InvalidArgumentError, match=r"^url: must be a string, got " + type(url).__name__):
        CreateEndpointRequest(url=url)  # type: ignore[arg-type]


def test_create_request_names_the_failing_event_type_by_index() -> None:
    """An empty event name inside event_types is reported as event_types[i].event_name."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url="https://example.com/hook", event_types=["note.created", ""])
    assert info.value.field == "event_types[1].event_name"
    assert str(info.value) == "event_types[1].event_name: must not be empty"


def test_create_request_names_a_wrong_item_type_by_index() -> None:
    """An item that is neither an EventType nor a str is reported as event_types[i]."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url="https://example.com/hook", event_types=[EventType("a.b"), 7])  # type: ignore[list-item]
    assert info.value.field == "event_types[1]"
    assert "int" in info.value.problem


@pytest.mark.parametrize("value", ["note.created", b"note.created", None, 3])
def test_create_request_rejects_event_types_that_are_not_a_list(value: object) -> None:
    """A bare string (not a list of names) or a non-iterable for event_types is rejected."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url="https://example.com/hook", event_types=value)  # type: ignore[arg-type]
    assert info.value.field == "event_types"


@pytest.mark.parametrize("secret", ["", "  ", 12])
def test_create_request_rejects_bad_secret_without_echoing_it(secret: object) -> None:
    """An empty or non-string secret is rejected naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url="https://example.com/hook", secret=secret)  # type: ignore[arg-type]
    assert info.value.field == "secret"


def test_create_request_secret_with_control_character_is_not_echoed() -> None:
    """The error for a malformed secret does not repeat the secret."""
    with pytest.raises(InvalidArgumentError) as info:
        CreateEndpointRequest(url="https://example.com/hook", secret=SECRET + "\n")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_create_request_repr_hides_the_secret() -> None:
    """repr() of a create request shows url and event types but never the secret."""
    request = CreateEndpointRequest(url="https://example.com/hook", event_types=["note.created"], secret=SECRET)
    text = repr(request)
    assert SECRET not in text
    assert "https://example.com/hook" in text
    assert "note.created" in text


def test_requests_are_frozen() -> None:
    """Request records cannot be changed after validation."""
    request = CreateEndpointRequest(url="https://example.com/hook")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.url = "relative"  # type: ignore[misc]


def test_evolve_revalidates() -> None:
    """attrs.evolve runs the validators again, so a copy cannot smuggle a bad URL."""
    request = CreateEndpointRequest(url="https://example.com/hook")
    with pytest.raises(InvalidArgumentError, match=r"^url: "):
        attrs.evolve(request, url="/relative")


def test_update_request_that_changes_nothing_is_rejected() -> None:
    """An UpdateEndpointRequest with every field None is rejected."""
    with pytest.raises(InvalidArgumentError, match="changes nothing"):
        UpdateEndpointRequest()


def test_update_request_with_empty_event_types_is_rejected() -> None:
    """An empty event_types list is rejected (the API cannot clear it; None keeps it)."""
    with pytest.raises(InvalidArgumentError) as info:
        UpdateEndpointRequest(event_types=[])
    assert info.value.field == "event_types"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"enabled": False},
        {"enabled": True},
        {"url": "https://example.com/new"},
        {"secret": SECRET},
        {"event_types": ["note.created"]},
    ],
)
def test_update_request_accepts_any_single_change(kwargs: dict[str, object]) -> None:
    """Any single change makes a valid UpdateEndpointRequest."""
    request = UpdateEndpointRequest(**kwargs)  # type: ignore[arg-type]
    for name, value in kwargs.items():
        if name == "event_types":
            assert request.event_types == (EventType("note.created"),)
        else:
            assert getattr(request, name) == value


@pytest.mark.parametrize("enabled", ["yes", 1, 0])
def test_update_request_enabled_must_be_a_bool(enabled: object) -> None:
    """The enabled flag takes True, False or None only (1/0 and strings are rejected)."""
    with pytest.raises(InvalidArgumentError) as info:
        UpdateEndpointRequest(enabled=enabled)  # type: ignore[arg-type]
    assert info.value.field == "enabled"


def test_update_request_validates_url_and_event_types() -> None:
    """An update validates url and event_types like a create does."""
    with pytest.raises(InvalidArgumentError, match=r"^url: "):
        UpdateEndpointRequest(url="ftp://example.com")
    with pytest.raises(InvalidArgumentError) as info:
        UpdateEndpointRequest(event_types=["ok.name", " "])
    assert info.value.field == "event_types[1].event_name"


def test_update_request_repr_hides_the_secret() -> None:
    """repr() of an update request never shows the secret."""
    assert SECRET not in repr(UpdateEndpointRequest(secret=SECRET))


def test_response_records_defaults() -> None:
    """Endpoint, EventTypeDefinition and Subcategory have the documented defaults."""
    when = datetime(2020, 4, 1, tzinfo=UTC)
    endpoint = Endpoint(id="x", created=when, modified=when, enabled=True, url="https://example.com")
    assert endpoint.event_types == ()
    assert EventTypeDefinition("note.created") == EventTypeDefinition("note.created", "", False)
    assert Subcategory("opaque").display_name == ""


@given(st.text())
def test_check_url_either_accepts_http_url_or_names_the_field(text: str) -> None:
    """For any text, check_url returns an http(s) URL with a host or raises InvalidArgumentError naming it."""
    try:
        url = check_url("url", text)
    except InvalidArgumentError as exc:
        field = exc.field
    else:
        parts = urlsplit(url)
        field = "url" if parts.scheme.lower() in ("http", "https") and parts.hostname else "accepted a non-http URL"
    assert field == "url"


@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){1,3}", fullmatch=True),
    st.from_regex(r"(/[A-Za-z0-9._~-]{0,12}){0,4}", fullmatch=True),
    st.sampled_from(["http", "https"]),
)
def test_check_url_accepts_generated_valid_urls(host: str, path: str, scheme: str) -> None:
    """Every well-formed http(s) URL with a DNS-style host is accepted unchanged."""
    url = f"{scheme}://{host}{path}"
    assert check_url("url", url) == url
