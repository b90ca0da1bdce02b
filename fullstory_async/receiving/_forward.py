"""`Forwarder`: POST a stored delivery to an internal service, signed, and classify the answer.

One call of `Forwarder.forward` is one attempt: the body exactly as Fullstory sent it, the
Standard Webhooks headers of `_forwarded` (``webhook-id`` is the inbox key, the same on
every attempt), ``Fullstory-Forward-Attempt`` with the attempt number. The answer becomes a
`ForwardOutcome`, the same rule as the client's retry policy (RFC 9110 semantics):

====================================================  =========  ==============================
answer                                                outcome    why
====================================================  =========  ==============================
2xx                                                   ``done``   the service holds it
408, 425, 429, 5xx                                    ``retry``  the service may take it later;
                                                                 ``Retry-After`` honoured
timeout, refused or reset connection, TLS failure     ``retry``  the service is away
3xx                                                   ``dead``   never followed: naming the
                                                                 ``Location`` is the operator's
                                                                 job, not a guess of ours
other 4xx                                             ``dead``   the service refuses it; the
                                                                 same body would be refused again
====================================================  =========  ==============================

At most 64 KiB of an answer is read; a short excerpt, with the signing secret scrubbed
and control characters escaped, goes into the outcome's ``error``. TLS verifies the
service's certificate and host name (``ca_file`` for a private CA, ``client_cert`` and
``client_key`` for mutual TLS); proxy environment variables never apply (the service is
internal); plain ``http`` is allowed to a loopback host only, unless ``allow_insecure_http``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Literal

import aiohttp
import attrs
import yarl

from fullstory_async._auth import _is_loopback as is_loopback
from fullstory_async._error_decoder import parse_retry_after
from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._scrub import Secrets
from fullstory_async._version import __version__
from fullstory_async.receiving._events import WebhookEvent
from fullstory_async.receiving._forwarded import forward_key, sign_forwarded
from fullstory_async.receiving._inbox import delivery_key
from fullstory_async.receiving._settings import positive
from fullstory_async.receiving._verdicts import DeadLetterError, RetryLaterError, ServiceUnavailableError

ATTEMPT_HEADER = "Fullstory-Forward-Attempt"
"""The header carrying the attempt number (1 for the first attempt of a series)."""

MAX_ANSWER_BYTES = 64 * 1024
"""The most of a service's answer the forwarder reads."""

UNREACHABLE_BEFORE_PAUSE = 20
"""Attempts in a row without an answer after which the destination counts as down (its worker
pauses claiming instead of spending every event's attempts on an outage): enough that a few
resets of a healthy service never pause it, few enough that an outage costs 20 attempts, not thousands."""

_EXCERPT = 200
_RETRIED = frozenset({408, 425, 429})

Outcome = Literal["done", "retry", "dead"]


@attrs.frozen
class ForwardOutcome:
    """What one attempt to forward a delivery came to."""

    outcome: Outcome
    """``done`` (2xx), ``retry`` (408, 425, 429, 5xx, timeout, connection failure) or ``dead``."""

    status: int | None
    """The service's HTTP status; ``None`` when no answer came."""

    error: str | None = None
    """Why it was not ``done``: status and a scrubbed excerpt of the answer, or the failure."""

    retry_after: float | None = None
    """Seconds the service asked to wait (``Retry-After``), on a ``retry``."""

    unreachable: bool = False
    """True when no answer came at all (timeout, refused or reset connection, TLS failure)."""

    def delay(self, backoff: float, max_delay: float) -> float:
        """Return the wait before the next attempt: ``max(backoff, Retry-After)``, at most ``max_delay``."""
        return min(max(backoff, self.retry_after or 0.0), max_delay)


@attrs.frozen
class ForwardTarget:
    """Where and how to forward: the service's URL and the connection's settings."""

    url: str = attrs.field(repr=lambda url: repr(shown_url(url)))
    """The service's ``http(s)`` URL (its user info and query, which may hold credentials, are not in the repr)."""

    timeout: float = 10.0
    """Seconds one attempt may take, connection and whole answer included."""

    ca_file: str | None = None
    """A PEM bundle of the CAs to trust instead of the system's (a private CA)."""

    client_cert: str | None = None
    """A PEM client certificate for mutual TLS (with ``client_key``)."""

    client_key: str | None = None
    """The PEM private key of ``client_cert``."""

    allow_insecure_http: bool = False
    """Allow plain ``http`` to a host other than loopback."""

    def __attrs_post_init__(self) -> None:
        try:
            url = yarl.URL(self.url)
        except (TypeError, ValueError):
            raise InvalidArgumentError("url", "is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidArgumentError("url", "must be an absolute http:// or https:// URL")
        if url.scheme == "http" and not self.allow_insecure_http and not is_loopback(url.host):
            raise InvalidArgumentError(
                "url",
                f"plain http to {url.host} would send event bodies unencrypted; use https, "
                "or allow it with allow_insecure_http (--allow-insecure-http)",
            )
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout < float("inf")):
            raise InvalidArgumentError("timeout", f"must be a positive number of seconds, got {self.timeout!r}")
        if (self.client_cert is None) != (self.client_key is None):
            raise InvalidArgumentError("client_cert", "client_cert and client_key go together")

    def ssl_context(self) -> ssl.SSLContext:
        """Build a verifying TLS context: the system's CAs or ``ca_file``, and the client certificate if any."""
        field = "ca_file"
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.client_cert is not None:
                field = "client_cert"
                context.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgumentError(field, f"cannot be loaded: {exc.__class__.__name__}") from None
        return context


def shown_url(url: str) -> str:
    """Return a URL as shown in reprs and output: its user info and query left out (they may hold credentials)."""
    try:
        return str(yarl.URL(url).with_user(None).with_query(None))
    except (TypeError, ValueError):
        return "<not a URL>"


def _printable(text: str) -> str:
    """Escape control characters, so a hostile answer cannot rewrite an operator's terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class Forwarder:
    """Forwards deliveries to one service, at most ``concurrency`` at a time.

    ::

        async with Forwarder(ForwardTarget("https://events.internal/fullstory"), secret=whsec) as forwarder:
            outcome = await forwarder.forward(body, webhook_id=key, attempt=1)

    ``unreachable_streak`` counts the attempts in a row that got no answer at all, so a
    caller can stop spending events' attempts while the service is down.
    """

    def __init__(self, target: ForwardTarget, *, secret: str, concurrency: int = 16) -> None:
        forward_key(secret, field="sign secret")  # refuse a bad secret before the first event
        positive("concurrency", concurrency, integer=True)  # aiohttp reads a connection limit of 0 as "no limit"
        self.target = target
        self._secret = secret
        self._secrets = Secrets()  # the client's scrubber: the secret, its key part and any 8-character fragment
        self._secrets.hold([secret, secret.removeprefix("whsec_")])
        self._url = yarl.URL(target.url)
        self._ssl = target.ssl_context() if self._url.scheme == "https" else None
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self.unreachable_streak = 0
        """Attempts in a row that got no answer (reset by any answer)."""

    def __repr__(self) -> str:
        return f"<Forwarder to {shown_url(self.target.url)}>"

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections to the service."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency, ssl=self._ssl if self._ssl else True),
                timeout=aiohttp.ClientTimeout(total=self.target.timeout),
                trust_env=False,  # proxy variables are for the way out, not for an internal service
                headers={"User-Agent": f"fullstory-async/{__version__} (forward)"},
            )
        return self._session

    async def forward(
        self, body: bytes, *, webhook_id: str, attempt: int, timestamp: int | None = None
    ) -> ForwardOutcome:
        """POST ``body`` once and classify the answer (never raises for what the service does)."""
        headers = sign_forwarded(body, secret=self._secret, webhook_id=webhook_id, timestamp=timestamp)
        headers["Content-Type"] = "application/json"
        headers[ATTEMPT_HEADER] = str(attempt)
        try:
            async with self._client().post(self._url, data=body, headers=headers, allow_redirects=False) as answer:
                excerpt = await self._excerpt(answer)
                outcome = self._classify(answer.status, answer.reason, answer.headers, excerpt)
        except TimeoutError:
            outcome = ForwardOutcome("retry", None, f"no answer within {self.target.timeout:g} s", unreachable=True)
        except (aiohttp.ClientError, OSError) as exc:
            outcome = ForwardOutcome("retry", None, self._secrets.scrub(_printable(_failure(exc))), unreachable=True)
        self.unreachable_streak = self.unreachable_streak + 1 if outcome.unreachable else 0
        return outcome

    @staticmethod
    async def _excerpt(answer: aiohttp.ClientResponse) -> str:
        """Read at most `MAX_ANSWER_BYTES` of a refusal; a body cut short or stalled keeps what came.

        The status line is the answer: a 400 whose body never ends is still a 400 (a dead
        letter), not "no answer" (retried, and counted towards the outage pause).
        """
        if 200 <= answer.status < 300:
            return ""
        data = bytearray()
        cut = ""
        try:
            while len(data) < MAX_ANSWER_BYTES:
                chunk = await answer.content.read(MAX_ANSWER_BYTES - len(data))
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            cut = f" (answer cut short: {type(exc).__name__})"
        text = " ".join(data.decode("utf-8", errors="replace").split())
        return text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "") + cut

    def _classify(self, status: int, reason: str | None, headers: Mapping[str, str], excerpt: str) -> ForwardOutcome:
        if 200 <= status < 300:
            return ForwardOutcome("done", status)
        said = self._secrets.scrub(_printable(f"{status} {reason or ''}".strip() + (f": {excerpt}" if excerpt else "")))
        if 300 <= status < 400:
            location = self._secrets.scrub(_printable(headers.get("Location", "")[:_EXCERPT])) or "no Location"
            return ForwardOutcome("dead", status, f"{said} (redirect to {location} not followed)")
        if status in _RETRIED or status >= 500:
            return ForwardOutcome("retry", status, said, retry_after=parse_retry_after(headers.get("Retry-After")))
        return ForwardOutcome("dead", status, said)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {getattr(exc, 'certificate_error', exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ClientResponseError):  # its text ends with the URL, query (a token?) included
        return f"{type(exc).__name__}: {exc.message}"[:_EXCERPT]
    return f"{type(exc).__name__}: {exc}"[:_EXCERPT]


class ForwardHandler:
    """An `InboxWorker` handler that forwards each event with a `Forwarder`.

    ::

        worker = InboxWorker(inbox, ForwardHandler(forwarder), concurrency=16, max_attempts=12, max_delay=3600)

    ``done`` returns; ``dead`` raises `DeadLetterError`; ``retry`` raises `RetryLaterError` with
    the service's ``Retry-After``, or `ServiceUnavailableError` once ``UNREACHABLE_BEFORE_PAUSE``
    attempts in a row got no answer (the worker then pauses claiming; the event is not counted).
    """

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def __repr__(self) -> str:
        return f"<ForwardHandler {self.forwarder!r}>"

    async def __call__(self, event: WebhookEvent) -> str:
        """Forward one event; return the service's status (``"204"``, kept in the history), else raise the verdict."""
        key = event.delivery_key or delivery_key(event.org_id or "", event.body)
        outcome = await self.forwarder.forward(event.body, webhook_id=key, attempt=event.attempt or 1)
        reason = outcome.error or ""
        if outcome.outcome == "dead":
            raise DeadLetterError(reason)
        if outcome.outcome == "retry":
            if outcome.unreachable and self.forwarder.unreachable_streak >= UNREACHABLE_BEFORE_PAUSE:
                raise ServiceUnavailableError(reason)
            raise RetryLaterError(reason, after=outcome.retry_after)
        return str(outcome.status)
