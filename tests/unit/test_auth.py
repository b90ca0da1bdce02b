"""Authentication: where the key comes from, the host it selects, the header it sends."""

from __future__ import annotations

import base64

import pytest

from fullstory_async import ApiRequest, ApiResponse, Client, InvalidArgumentError
from fullstory_async._auth import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    EU1_BASE_URL,
    Auth,
    check_base_url,
    default_base_url,
    resolve_api_key,
)

KEY = "na1.by11QAbCdEfGhvs4u/DEMO"


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without FULLSTORY_API_KEY, whatever the machine has."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)


def test_key_from_argument() -> None:
    """An explicit api_key is used as it is."""
    assert resolve_api_key(KEY) == KEY


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument the key comes from FULLSTORY_API_KEY."""
    monkeypatch.setenv("FULLSTORY_API_KEY", "eu1.fromenv/ORG")
    assert resolve_api_key(None) == "eu1.fromenv/ORG"
    assert Client().base_url == EU1_BASE_URL


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit api_key takes precedence over the environment."""
    monkeypatch.setenv("FULLSTORY_API_KEY", "eu1.fromenv/ORG")
    assert resolve_api_key(KEY) == KEY


def test_missing_key_fails_at_construction() -> None:
    """Client() without a key anywhere raises InvalidArgumentError naming api_key and the variable."""
    with pytest.raises(InvalidArgumentError) as info:
        Client()
    assert info.value.field == "api_key"
    assert "FULLSTORY_API_KEY" in str(info.value)


@pytest.mark.parametrize("key", ["", "   ", "\n"])
def test_blank_key_is_missing(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank key, given or from the environment, counts as missing."""
    with pytest.raises(InvalidArgumentError, match=r"^api_key: no API key"):
        resolve_api_key(key)
    monkeypatch.setenv("FULLSTORY_API_KEY", key)
    with pytest.raises(InvalidArgumentError, match=r"^api_key: no API key"):
        Client()


@pytest.mark.parametrize("key", [123, b"na1.key", ["na1.key"]])
def test_non_string_key_is_rejected(key: object) -> None:
    """A key that is not a str raises InvalidArgumentError, not AttributeError."""
    with pytest.raises(InvalidArgumentError, match=r"^api_key: must be a string"):
        Client(api_key=key)  # type: ignore[arg-type]


def test_key_with_whitespace_is_rejected_without_echo() -> None:
    """A key with inner whitespace is rejected and the error does not repeat it."""
    with pytest.raises(InvalidArgumentError) as info:
        resolve_api_key("na1.abc def/ORG")
    assert info.value.field == "api_key"
    assert "abc" not in str(info.value)


@pytest.mark.parametrize("given", [f"Basic {KEY}", f"basic {KEY}", f"  {KEY}\n"])
def test_key_is_normalised(given: str) -> None:
    """Surrounding whitespace and a pasted `Basic ` prefix are removed."""
    assert resolve_api_key(given) == KEY


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("eu1.abc/ORG", "https://api.eu1.fullstory.com"),
        ("EU1.abc/ORG", "https://api.eu1.fullstory.com"),
        ("na1.abc/ORG", "https://api.fullstory.com"),
        ("legacykeywithoutregion", "https://api.fullstory.com"),
        ("eu2.abc/ORG", "https://api.fullstory.com"),
    ],
)
def test_default_base_url_by_region(key: str, expected: str) -> None:
    """eu1. keys default to the EU1 host, every other key to api.fullstory.com."""
    assert default_base_url(key) == expected
    assert Client(api_key=key).base_url == expected


def test_base_url_constants() -> None:
    """The two hosts are the documented ones."""
    assert (DEFAULT_BASE_URL, EU1_BASE_URL) == ("https://api.fullstory.com", "https://api.eu1.fullstory.com")


def test_base_url_override_wins_over_region() -> None:
    """base_url overrides the region default and loses its trailing slash."""
    client = Client(api_key="eu1.abc/ORG", base_url="https://proxy.example.com/fs/")
    assert client.base_url == "https://proxy.example.com/fs"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:9000", "http://127.1.2.3", "HTTPS://x.example"],
)
def test_loopback_http_and_any_https_accepted(url: str) -> None:
    """Plain http is fine for loopback hosts; https for any host."""
    assert check_base_url(url) == url.rstrip("/")


def test_remote_http_refused_unless_allowed() -> None:
    """Plain http to a non-loopback host is refused unless allow_insecure_http is set."""
    with pytest.raises(InvalidArgumentError) as info:
        Client(api_key=KEY, base_url="http://api.example.com")
    assert info.value.field == "base_url"
    assert "allow_insecure_http" in str(info.value)
    client = Client(api_key=KEY, base_url="http://api.example.com", allow_insecure_http=True)
    assert client.base_url == "http://api.example.com"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.example.com",
        "api.fullstory.com",
        "https://",
        "https://api.example.com?x=1",
        "https://api.example.com#frag",
        "https://user:pw@api.example.com",
        "https://api.example.com:99999",
        "http://[::1]0",  # urlsplit reads host ::1 and no port; aiohttp's URL parser refuses it
        "",
    ],
)
def test_bad_base_urls_refused(url: str) -> None:
    """Non-http(s), host-less, query/fragment/credential-carrying or malformed base URLs are refused."""
    with pytest.raises(InvalidArgumentError) as info:
        check_base_url(url)
    assert info.value.field == "base_url"


@pytest.mark.parametrize("url", ["ftp://user:s3cretpw@api.example.com", "user:s3cretpw@api.example.com"])
def test_a_refused_base_url_never_echoes_its_password(url: str) -> None:
    """A base URL refused for its scheme or host is not shown: it may carry credentials."""
    with pytest.raises(InvalidArgumentError) as info:
        check_base_url(url)
    assert info.value.field == "base_url"
    assert "s3cretpw" not in str(info.value)


def test_non_string_base_url_refused() -> None:
    """A base_url that is not a str is refused naming the field."""
    with pytest.raises(InvalidArgumentError, match=r"^base_url: must be a string"):
        check_base_url(8080)  # type: ignore[arg-type]


async def test_auth_sends_raw_key_after_basic() -> None:
    """The header is `Basic <raw key>`, not base64 of user:password."""
    seen: list[ApiRequest] = []

    async def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return ApiResponse(200)

    await Auth(KEY)(ApiRequest("GET", "/"), handler)
    header = seen[0].headers["Authorization"]
    assert header == "Basic na1.by11QAbCdEfGhvs4u/DEMO"
    assert base64.b64encode(KEY.encode()).decode() not in header


async def test_auth_replaces_a_caller_authorization_header() -> None:
    """A caller-supplied Authorization header (any case) is replaced, not duplicated."""
    seen: list[ApiRequest] = []

    async def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return ApiResponse(200)

    await Auth(KEY)(ApiRequest("GET", "/", headers={"authorization": "Bearer other"}), handler)
    assert dict(seen[0].headers) == {"Authorization": f"Basic {KEY}"}


def test_auth_and_client_repr_hide_the_key() -> None:
    """repr(Auth) and repr(Client) never show the key."""
    assert KEY not in repr(Auth(KEY))
    assert "<redacted>" in repr(Auth(KEY))
    client = Client(api_key=KEY)
    assert KEY not in repr(client)
    assert "by11Q" not in repr(client)
    assert repr(client) == "Client(base_url='https://api.fullstory.com', api_key=<redacted>)"
