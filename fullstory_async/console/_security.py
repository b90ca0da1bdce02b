"""The console's guards, in the order a request meets them: Host, Origin, who is asking, CSRF; and the headers.

- **Host** (against DNS rebinding): a page on another site whose name is made to resolve to
  127.0.0.1 reaches a loopback console with its own name in ``Host``; only the names the
  console is served under (with its port) are answered, before anything else (``421``).
- **Origin**: a state-changing request that carries ``Origin`` (browsers send it on every
  ``POST``) must come from the console's own origin; ``Sec-Fetch-Site`` must not say another site.
- **Who**: with a token, a script sends ``Authorization: Bearer TOKEN`` (compared in constant
  time); a person logs in once with it and gets a *session*: a random id in an HttpOnly,
  SameSite=Strict cookie (never the token), kept in this process only, ending after
  ``session_ttl``. Failed logins are throttled per client (an IPv4 address, an IPv6 /64) by a
  *token bucket*.
- **CSRF** (*synchronizer token*): every state-changing request from a page (a session, or a
  loopback console without a token) carries the page's token, in the form field ``csrf`` or
  the header ``X-CSRF-Token``; a bearer call needs none (a browser never adds that header).
- **Headers** on every response: a Content-Security-Policy that allows only the console's own
  script and style files (no inline script) and no framing, ``nosniff``, no referrer sent to
  other sites, no caching.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError

SESSION_COOKIE = "fs_console_session"
"""The session cookie's name."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of every response."""

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # not no-referrer: under it a browser sends "Origin: null" on its own form
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
"""Headers set on every response."""

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
"""The ``Host`` names of a loopback console."""

MAX_SESSIONS = 1024
"""Sessions kept at once; a new login past it ends the oldest (a login flood cannot grow memory)."""

LOGIN_BURST = 5
"""Failed logins a client address may make at once (the token bucket's size)."""

LOGIN_EVERY = 2.0
"""Seconds that earn one more failed login back (the bucket's refill)."""

_MAX_CLIENTS = 4096  # addresses whose failed logins are remembered; past it the oldest is forgotten


MIN_TOKEN = 16
"""Characters a token needs at least (a login is throttled, but a short token is still guessable)."""


def _token(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or len(value) < MIN_TOKEN):
        raise InvalidArgumentError(
            "token",
            f"must be at least {MIN_TOKEN} characters: make a long random one "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@attrs.frozen
class ConsoleSettings:
    """How `console_app` guards the console (``fullstory-async inbox serve`` fills it from its flags)."""

    token: str | None = attrs.field(default=None, repr=False, validator=_token)
    """The token of ``Authorization: Bearer`` and of the login; ``None``: no login (loopback only)."""

    read_only: bool = False
    """Hide and refuse every action (replay, requeue)."""

    secure: bool = False
    """Served over HTTPS (here or at a proxy in front): cookies are ``Secure``, the origin is ``https://``."""

    hosts: frozenset[str] | None = LOOPBACK_NAMES
    """The ``Host`` names answered (IPv6 in brackets), each with the port the request came in on; ``None``: any."""

    session_ttl: float = attrs.field(default=8 * 3600.0, validator=_positive)
    """Seconds a login lasts (the cookie's ``Max-Age``, and server-side)."""

    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False, eq=False)
    """The clock of sessions and the login throttle (tests pass a manual one)."""


def check_host(request: web.Request, settings: ConsoleSettings) -> bool:
    """Tell whether ``Host`` names the console: one of ``settings.hosts``, with the port the request came in on."""
    if settings.hosts is None:
        return True
    host = request.headers.get("Host", "").strip().lower()
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port:  # no port given ("[::1]" alone ends in "]")
        name, port = host, ("443" if settings.secure else "80")
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    local_port = str(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else None
    return name in settings.hosts and (local_port is None or port == local_port)


def check_origin(request: web.Request) -> str | None:
    """Return why a state-changing request comes from elsewhere, ``None`` when it may come from here.

    The origin's host and port must be the request's ``Host`` (already checked); its scheme is
    not compared, since a proxy in front may terminate TLS (and both schemes reach this server).
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site not in (None, "same-origin", "none"):
        return "a request from another site"
    origin = request.headers.get("Origin")
    if origin is None:
        return None  # not from a browser page (a script), or a browser that sends no Origin on a same-origin form
    if origin.strip() == "null" and site == "same-origin":  # a page of ours under a no-referrer policy of the user's
        return None
    scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or netloc != request.headers.get("Host", "").strip().lower():
        return "a request from another origin"
    return None


def token_matches(given: str, token: str) -> bool:
    """Compare a token in constant time, its length too (`hmac.compare_digest` of the SHA-256 digests)."""
    digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(digest, hashlib.sha256(token.encode("utf-8")).digest())


def bearer(request: web.Request) -> str | None:
    """Return the token of ``Authorization: Bearer``, ``None`` without that header."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


@attrs.frozen
class Session:
    """One login: when it ends (by `ConsoleSettings.clock`) and its CSRF token."""

    ends: float
    csrf: str = attrs.field(repr=False)


class Sessions:
    """The logins of this process: random ids to `Session`, the oldest ended past `MAX_SESSIONS`."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self._settings = settings
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def start(self) -> tuple[str, Session]:
        """Start a session; return its id (the cookie's value) and the session."""
        now = self._settings.clock()
        for sid in [sid for sid, session in self._sessions.items() if session.ends <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        session = Session(now + self._settings.session_ttl, secrets.token_urlsafe(32))
        self._sessions[sid] = session
        return sid, session

    def find(self, sid: str | None) -> Session | None:
        """Return the live session of a cookie's value, ``None`` for none, an unknown or an ended one."""
        session = self._sessions.get(sid) if sid else None
        if session is None:
            return None
        if session.ends <= self._settings.clock():
            del self._sessions[sid]  # type: ignore[arg-type]  # sid is a str here
            return None
        return session

    def end(self, sid: str | None) -> None:
        """End a session (log out)."""
        if sid:
            self._sessions.pop(sid, None)


def client(address: str) -> str:
    """Return who an address is for the throttle: an IPv4 address (mapped in IPv6 or not), an IPv6 /64.

    One IPv6 host is usually given a whole /64: counted per address, it would have 2^64 buckets.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Failed logins per `client`: a token bucket of `LOGIN_BURST`, one back every `LOGIN_EVERY` seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client: (tokens, when)

    def _tokens(self, who: str) -> float:
        tokens, when = self._buckets.get(who, (LOGIN_BURST, self._clock()))
        return min(LOGIN_BURST, tokens + (self._clock() - when) / LOGIN_EVERY)

    def wait(self, address: str) -> float:
        """Return the seconds before ``address`` may try again (0: now)."""
        tokens = self._tokens(client(address))
        return 0.0 if tokens >= 1 else (1 - tokens) * LOGIN_EVERY

    def failed(self, address: str) -> None:
        """Count a failed login of ``address``."""
        who = client(address)
        tokens = self._tokens(who) - 1
        self._buckets.pop(who, None)
        self._buckets[who] = (tokens, self._clock())
        while len(self._buckets) > _MAX_CLIENTS:
            self._buckets.popitem(last=False)


async def set_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Add `HEADERS` to a response about to be sent (aiohttp's ``on_response_prepare``)."""
    for name, value in HEADERS.items():
        response.headers[name] = value
