"""Authentication: where the API key comes from, which host it talks to, and the header it sends.

Environment variables (explicit arguments always win): ``FULLSTORY_API_KEY`` (the key),
``FULLSTORY_BASE_URL`` (the API root, e.g. the one ``fake-server`` prints).

Fullstory takes the raw key after ``Basic`` (not base64 of user:password). The key is
held only by `Auth` and never appears in a repr, log line or exception.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from urllib.parse import urlsplit

import yarl

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._models import check_unicode
from fullstory_async._pipeline import Handler

API_KEY_ENV = "FULLSTORY_API_KEY"
BASE_URL_ENV = "FULLSTORY_BASE_URL"
DEFAULT_BASE_URL = "https://api.fullstory.com"
EU1_BASE_URL = "https://api.eu1.fullstory.com"


def resolve_api_key(api_key: str | None) -> str:
    """Return the key given, else ``$FULLSTORY_API_KEY``; raise a clear error when there is none."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not isinstance(key, str):
        raise InvalidArgumentError("api_key", f"must be a string, got {type(key).__name__}")
    if key is None or not key.strip():
        raise InvalidArgumentError(
            "api_key", f"no API key: pass Client(api_key=...) or set the {API_KEY_ENV} environment variable"
        )
    key = key.strip()
    if key[:6].lower() == "basic ":
        key = key[6:].strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidArgumentError("api_key", "must not contain whitespace or control characters")
    return key


def default_base_url(api_key: str) -> str:
    """``https://api.eu1.fullstory.com`` for ``eu1.`` keys, ``https://api.fullstory.com`` otherwise."""
    return EU1_BASE_URL if api_key.lower().startswith("eu1.") else DEFAULT_BASE_URL


def resolve_base_url(base_url: str | None, api_key: str) -> str:
    """Return ``base_url`` if given, else ``$FULLSTORY_BASE_URL`` if set, else the key's region's API root."""
    if base_url is not None:
        return base_url
    return os.environ.get(BASE_URL_ENV, "").strip() or default_base_url(api_key)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_insecure_http: bool = False) -> str:
    """Validate a base URL and return it without a trailing slash.

    Plain ``http://`` is accepted only for loopback hosts (the fake server) or when
    ``allow_insecure_http`` is set: the API key must not cross a network unencrypted.
    """
    if not isinstance(base_url, str):
        raise InvalidArgumentError("base_url", f"must be a string, got {type(base_url).__name__}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in base_url.strip()):
        raise InvalidArgumentError("base_url", "must not contain whitespace or control characters")
    check_unicode("base_url", base_url)
    try:
        parts = urlsplit(base_url.strip())
        parts.port  # noqa: B018 - parsing the port validates it
        yarl.URL(base_url.strip())  # the parser aiohttp will use must accept it too
    except ValueError as exc:
        raise InvalidArgumentError("base_url", f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"  # never the URL: it may hold a password
        got += "" if parts.hostname else " and no host"
        raise InvalidArgumentError("base_url", f"must be an absolute http(s) URL, got {got}")
    if not parts.hostname.isascii():  # yarl/aiohttp would fail later on IDNA rules (e.g. a "\x80" host)
        raise InvalidArgumentError("base_url", "the host must be ASCII (give an internationalised name in xn-- form)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidArgumentError("base_url", "must not contain a query, fragment or credentials")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise InvalidArgumentError(
            "base_url", "plain http is allowed only for loopback hosts; pass allow_insecure_http=True to override"
        )
    return base_url.strip().rstrip("/")


class Auth:
    """Middleware that adds ``Authorization: Basic <key>`` to every request."""

    def __init__(self, api_key: str) -> None:
        self._header = f"Basic {api_key}"

    def __repr__(self) -> str:
        return "Auth(api_key=<redacted>)"

    def __call__(self, request: ApiRequest, call_next: Handler) -> Awaitable[ApiResponse]:
        # A plain function returning the rest of the chain's coroutine: no frame of its own.
        return call_next(request.with_header("Authorization", self._header))
